/**
 * ftrace on every live site of the real kernel, end to end: the guest's
 * `ftrace.set('enable', 'all')` on a booted real machine: the guest builds the batch, the core
 * freezes the frames, snapshots the bytes, the verifier decides every item, the core writes
 * the calls and audits the batch. After boot the live sites are the 38,252 in `.text`: the
 * 2,269 in `.init.text` were freed with init memory (ftrace_free_init_mem), as in Linux.
 *
 * The first enable runs cold (code not yet optimised by the JIT, the verifier parked); the
 * figure is the median of the warm ones that follow, each after a disable. Both are reported.
 */
import type { BenchContext } from './context.ts';
import { bootReal } from './real-machine.ts';
import { median } from './stats.ts';

/** What the ftrace run measured. */
export interface FtraceAll {
  readonly sites: number;
  readonly coldMs: number;
  readonly warmMs: readonly number[];
  readonly medianMs: number;
  readonly disableMedianMs: number;
}

/** Boots the real kernel and times `runs` warm enables of every site (after one cold one). */
export async function measureFtraceAll(ctx: BenchContext, runs: number): Promise<FtraceAll> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel (fixtures)');
  const { machine } = await bootReal(ctx, { image: await ctx.image() });
  try {
    const ftrace = machine.kernel!.ftrace;
    const once = async (op: 'enable' | 'disable'): Promise<number> => {
      const t0 = performance.now();
      const r = await ftrace.set(op, 'all');
      const ms = performance.now() - t0;
      if (!r.ok) throw new Error(`ftrace ${op} all was refused: ${r.reason}`);
      return ms;
    };
    const coldMs = await once('enable');
    const disables = [await once('disable')];
    const warmMs: number[] = [];
    for (let i = 0; i < runs; i++) {
      warmMs.push(await once('enable'));
      disables.push(await once('disable'));
    }
    return { sites: ftrace.counts.sites, coldMs, warmMs, medianMs: median(warmMs), disableMedianMs: median(disables) };
  } finally {
    await machine.dispose();
  }
}
