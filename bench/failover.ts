/**
 * Verifier failover after an injected crash, on the link's default transport (the ring).
 *
 * Each trial waits for a warm spare (journal replayed), arms a crash in the active worker,
 * then sends a burst of requests at once: the first makes the worker exit (as a verifier VM
 * that dies mid-request), every request in flight on it must get exactly one fail-closed
 * answer, and requests go on until one is decided by the spare. The figure is the outage as
 * the core sees it: from sending the burst to the first verdict decided by the successor (it
 * includes noticing the death, which the link's own `lastFailoverMs` does not). A request
 * that gets no answer within 30 s is lost; the target is none.
 */
import { VerifierLink, type OutgoingRequest } from '../hypervisor/verifier-link/verifier-link.ts';
import { VERIFIER_UNAVAILABLE, type Verdict } from '../shared/protocol.ts';
import { ftraceEnableItems, type BenchContext } from './context.ts';
import { median } from './stats.ts';

/** What the failover run measured. */
export interface Failover {
  readonly trials: number;
  /** Median outage (ms), and the worst. */
  readonly medianMs: number;
  readonly maxMs: number;
  /** The link's own measure: from noticing the death to the successor's first verdict (median, ms). */
  readonly linkMedianMs: number;
  readonly sent: number;
  readonly answered: number;
  readonly lost: number;
  /** Answers that were fail-closed denials ("verifier unavailable"). */
  readonly failedClosed: number;
}

const LOST_AFTER_MS = 30_000;

/** Runs `trials` crash-and-failover trials with bursts of `burst` requests. */
export async function measureFailover(ctx: BenchContext, trials: number, burst: number): Promise<Failover> {
  const init = { ...(await ctx.verifierInit()), faultInjection: true };
  const { sites, trampoline } = await ctx.ftraceSites(1);
  const request: OutgoingRequest = { kind: 'text-patch', vm: 'bench', items: ftraceEnableItems(sites, trampoline) };
  const link = await VerifierLink.start({ init, spare: true, timeoutMs: 5000 });
  let sent = 0;
  let answered = 0;
  let failedClosed = 0;
  const outages: number[] = [];
  const linkMs: number[] = [];
  /** Sends one request; counts its answer (exactly one per request, or it is lost). */
  const ask = (): Promise<Verdict | undefined> => {
    sent++;
    let timer: NodeJS.Timeout | undefined;
    const lost = new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), LOST_AFTER_MS)));
    return Promise.race([
      link.verify(request).then((v) => {
        answered++;
        if (v.reason.startsWith(VERIFIER_UNAVAILABLE)) failedClosed++;
        return v;
      }),
      lost,
    ]).finally(() => clearTimeout(timer));
  };
  try {
    for (let t = 0; t < trials; t++) {
      if (!(await link.standby())) throw new Error('no warm spare verifier');
      for (let i = 0; i < 50; i++) await ask();
      if (!(await link.injectFault('crash'))) throw new Error('fault injection refused');
      const t0 = performance.now();
      const answers = await Promise.all(Array.from({ length: burst }, ask));
      let served = answers.find((v) => v !== undefined && !v.reason.startsWith(VERIFIER_UNAVAILABLE));
      while (served === undefined) {
        const v = await ask();
        if (v && !v.reason.startsWith(VERIFIER_UNAVAILABLE)) served = v;
        if (performance.now() - t0 > LOST_AFTER_MS) throw new Error('the spare never served');
      }
      outages.push(performance.now() - t0);
      linkMs.push(link.stats.lastFailoverMs ?? Number.NaN);
    }
    return {
      trials,
      medianMs: median(outages),
      maxMs: Math.max(...outages),
      linkMedianMs: median(linkMs),
      sent,
      answered,
      lost: sent - answered,
      failedClosed,
    };
  } finally {
    await link.dispose();
  }
}
