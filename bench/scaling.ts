/**
 * How the costs grow (`heki bench --scaling`), each at three sizes: with guest RAM (boot and
 * lock, EPT checks), with the number of modules (authentication time and rate), and with the
 * number of patch sites (verification over the ring, and ftrace end to end on a glob
 * selecting that many sites). Rows for the table only; the JSON report keeps its keys.
 */
import type { BenchContext } from './context.ts';
import { freeGiB } from './context.ts';
import { measureBootLock } from './boot.ts';
import { measureModuleAuth } from './module-auth.ts';
import { measurePatchThroughput } from './patch-throughput.ts';
import { bootReal } from './real-machine.ts';
import type { BenchRow } from './run.ts';
import { median, si } from './stats.ts';

/** Runs the scaling measurements; needs the fixtures. */
export async function measureScaling(ctx: BenchContext): Promise<BenchRow[]> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel (fixtures)');
  const rows: BenchRow[] = [];
  const row = (name: string, value: string, note?: string) => rows.push({ section: 'scaling', name, value, ...(note ? { note } : {}) });

  for (const gib of [0.25, 1, 4]) {
    if (gib > freeGiB() / 2) {
      row(`boot and lock, ${gib} GiB guest`, 'skipped', `${freeGiB().toFixed(1)} GiB free on the host`);
      continue;
    }
    const b = await measureBootLock(ctx, ctx.n(1, 2), BigInt(Math.round(gib * 2 ** 30)));
    row(`boot and lock, ${gib} GiB guest`, `${b.totalMs.toFixed(0)} ms`, `boot() ${b.bootMs.toFixed(0)} ms`);
  }

  const mods = await measureModuleAuth(ctx, ctx.n(1, 4));
  const order = mods.modules;
  for (const n of [1, 4, order.length]) {
    const m = await measureModuleAuth(ctx, ctx.n(1, 4), n);
    const f = m.figures.find((x) => x.scheme === 'ed25519-node')!;
    row(
      `module auth, ${n} module(s) (${order.slice(0, n).join(', ')})`,
      `${((f.bytes / 1e6 / f.mbPerSecond) * 1000).toFixed(1)} ms`,
      `${(f.bytes / 1e6).toFixed(2)} MB at ${f.mbPerSecond.toFixed(1)} MB/s`,
    );
  }

  for (const n of [1024, 10_000, 38_252]) {
    const t = await measurePatchThroughput(ctx, 'ring', n, Math.max(2, Math.ceil(ctx.n(40_000, 400_000) / n)), 2);
    row(`verification over the ring, ${n}-item batches`, `${si(t.itemsPerSecond)}items/s`, `${((n / t.itemsPerSecond) * 1000).toFixed(2)} ms per batch`);
  }

  const { machine } = await bootReal(ctx, { image: await ctx.image() });
  try {
    const ftrace = machine.kernel!.ftrace;
    const all = ftrace.select('all');
    // Globs over function names that select about 1,000, 10,000 and all live sites.
    for (const want of [1000, 10_000, all.length]) {
      const glob =
        want === all.length
          ? 'all'
          : pickGlob(
              all.map((s) => s.func),
              want,
            );
      const n = glob === 'all' ? all.length : ftrace.select(glob).length;
      const times: number[] = [];
      for (let i = 0; i < ctx.n(1, 5) + 1; i++) {
        const t0 = performance.now();
        const on = await ftrace.set('enable', glob);
        const ms = performance.now() - t0;
        if (!on.ok) throw new Error(`ftrace enable ${glob}: ${on.reason}`);
        const off = await ftrace.set('disable', glob);
        if (!off.ok) throw new Error(`ftrace disable ${glob}: ${off.reason}`);
        if (i > 0) times.push(ms);
      }
      row(`ftrace enable, ${n} sites (${glob})`, `${median(times).toFixed(1)} ms`, 'warm median');
    }
  } finally {
    await machine.dispose();
  }
  return rows;
}

/** A glob `<prefix>*` over `funcs` that selects about `want` of them. */
function pickGlob(funcs: readonly string[], want: number): string {
  const byPrefix = new Map<string, number>();
  for (const f of funcs) {
    for (let len = 1; len <= 3 && len <= f.length; len++) {
      const p = f.slice(0, len);
      byPrefix.set(p, (byPrefix.get(p) ?? 0) + 1);
    }
  }
  let best = '';
  let bestDiff = Infinity;
  for (const [p, n] of byPrefix) {
    const d = Math.abs(n - want);
    if (d < bestDiff) {
      best = p;
      bestDiff = d;
    }
  }
  return `${best}*`;
}
