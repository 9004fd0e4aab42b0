/**
 * One request's round trip core -> verifier -> core, as the core sees it
 * (`VerifierLink.verify`, awaited): over comlink and over the verification ring, the same
 * request, the same verifier configuration, one after the other (never at the same time, so
 * the two do not compete for CPUs). The request is one ftrace item, the smallest real
 * text-patch batch: on the real manifest it is allowed; without fixtures it is denied ("no
 * kernel manifest loaded"), which is the same work minus the site lookup.
 */
import { VerifierLink, type OutgoingRequest } from '../hypervisor/verifier-link/verifier-link.ts';
import { ftraceEnableItems, type BenchContext } from './context.ts';
import { quantile } from './stats.ts';

/** Round-trip figures of one transport. */
export interface RoundTrip {
  readonly transport: 'comlink' | 'ring';
  readonly n: number;
  readonly p50us: number;
  readonly p99us: number;
  readonly meanUs: number;
  readonly maxUs: number;
  /** Whether the request was allowed (real manifest) or denied (no fixtures). */
  readonly allowed: boolean;
}

/** Measures `n` round trips after `warmup` over one transport. */
export async function measureRoundTrip(
  ctx: BenchContext,
  transport: 'comlink' | 'ring',
  n: number,
  warmup: number,
  onProgress?: (done: number) => void,
): Promise<RoundTrip> {
  const init = await ctx.verifierInit();
  const { sites, trampoline } = await ctx.ftraceSites(1);
  const request: OutgoingRequest = { kind: 'text-patch', vm: 'bench', items: ftraceEnableItems(sites, trampoline) };
  // No spare: it would only compete for the CPUs; failover is measured on its own.
  const link = await VerifierLink.start({ init, transport, spare: false, timeoutMs: 30_000 });
  try {
    const first = await link.verify(request);
    for (let i = 0; i < warmup; i++) await link.verify(request);
    const us: number[] = new Array(n);
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      const v = await link.verify(request);
      us[i] = (performance.now() - t0) * 1000;
      if (v.ok !== first.ok) throw new Error(`round trip ${i}: the verdict changed (${v.reason})`);
      if ((i & 1023) === 0) onProgress?.(i / n);
    }
    if (first.reason.startsWith('verifier unavailable')) throw new Error(`the verifier did not answer: ${first.reason}`);
    return {
      transport,
      n,
      p50us: quantile(us, 0.5),
      p99us: quantile(us, 0.99),
      meanUs: us.reduce((a, b) => a + b, 0) / n,
      maxUs: Math.max(...us),
      allowed: first.ok,
    };
  } finally {
    await link.dispose();
  }
}
