/**
 * Forking a booted machine (machine/machine-fork.ts): `bootBase` once, then `fork()` with a
 * warm verifier (started ahead by the base, as `heki attacks` has them), which is the
 * in-memory copy of the VM, the verifier state import and the guest kernel's rebuild; and
 * once with the verifier started on demand, which adds a worker thread's start.
 */
import { bootBase } from '../machine/machine.ts';
import type { BenchContext } from './context.ts';
import { median } from './stats.ts';

/** Fork figures: the median with a warm verifier, and one fork that starts its verifier. */
export interface ForkTimes {
  readonly medianMs: number;
  readonly coldVerifierMs: number;
  readonly sharedPages: number;
  readonly runs: number;
}

/** Boots a base and forks it `runs` times (each fork disposed before the next). */
export async function measureFork(ctx: BenchContext, runs: number): Promise<ForkTimes> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel (fixtures)');
  const b = await bootBase(
    { kernel: 'real', keys: { pubkeys: [], certs: [ctx.fixtures.signingKeyDer], revoked: [] }, verifierSpare: false, ...(ctx.cpu ? { cpu: ctx.cpu } : {}) },
    { warm: 1 },
  );
  if (!b.ok) throw new Error(b.error.message);
  const base = b.value;
  try {
    const times: number[] = [];
    let sharedPages = 0;
    for (let i = 0; i < runs; i++) {
      await base.warmed();
      const t0 = performance.now();
      const f = await base.fork();
      times.push(performance.now() - t0);
      if (!f.ok) throw new Error(f.error);
      sharedPages = f.value.vmm.core.memory.sharedPages();
      await f.value.dispose();
    }
    // A fork whose verifier starts on demand (no warm one: forkMachine starts it).
    const { forkMachine } = await import('../machine/machine-fork.ts');
    const t0 = performance.now();
    const f = await forkMachine(base.machine);
    const coldVerifierMs = performance.now() - t0;
    if (!f.ok) throw new Error(f.error);
    await f.value.dispose();
    return { medianMs: median(times), coldVerifierMs, sharedPages, runs };
  } finally {
    await base.dispose();
  }
}
