/**
 * Batched patch verifications per second: text-patch batches of real ftrace items (the live
 * sites of the real kernel, NOP -> call ftrace_caller) verified by the real plugins against
 * the real manifest, `inFlight` batches at a time so the core's encoding of one batch overlaps
 * the verifier's work on another. Every verdict must be allowed, or the run fails: a number
 * only counts if the verifier really decided every item.
 */
import { PatchRecords } from '../shared/ring/patch-records.ts';
import { VerifierLink } from '../hypervisor/verifier-link/verifier-link.ts';
import { ftraceEnableItems, type BenchContext } from './context.ts';

/** Throughput of one configuration. */
export interface PatchThroughput {
  readonly transport: 'comlink' | 'ring';
  readonly batch: number;
  readonly batches: number;
  readonly itemsPerSecond: number;
}

/** Verifies `batches` batches of `batch` items over `transport`, `inFlight` at a time. */
export async function measurePatchThroughput(
  ctx: BenchContext,
  transport: 'comlink' | 'ring',
  batch: number,
  batches: number,
  inFlight: number,
): Promise<PatchThroughput> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel manifest (fixtures)');
  const init = await ctx.verifierInit();
  const { sites, trampoline } = await ctx.ftraceSites();
  const items = ftraceEnableItems(sites.slice(0, batch), trampoline);
  const records = PatchRecords.fromItems(items);
  if (typeof records === 'string') throw new Error(records);
  const link = await VerifierLink.start({ init, transport, spare: false, timeoutMs: 120_000 });
  try {
    // The core builds records from the guest's batch (hypervisor/hypercalls/text-patch.ts);
    // over comlink the link makes protocol items from them, as it does for a fallback.
    const one = () => link.verifyPatches({ vm: 'bench', records });
    for (let w = 0; w < 2; w++) {
      const v = await one();
      if (!v.ok) throw new Error(`warm-up batch denied: ${v.reason}`);
    }
    let sent = 0;
    const t0 = performance.now();
    const worker = async (): Promise<void> => {
      while (sent < batches) {
        sent++;
        const v = await one();
        if (!v.ok) throw new Error(`batch denied: ${v.reason}`);
      }
    };
    await Promise.all(Array.from({ length: inFlight }, worker));
    const s = (performance.now() - t0) / 1000;
    return { transport, batch: records.count, batches, itemsPerSecond: (batches * records.count) / s };
  } finally {
    await link.dispose();
  }
}
