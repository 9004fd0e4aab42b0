/**
 * A booted machine on the real Debian 6.1 image, for integration tests. The caller must
 * dispose it (t.teardown), which stops the verifier workers.
 *
 * Its verifier runs with the product's bounds (2 s without progress, 120 s per request): the
 * link fails closed on lack of progress, not by the clock, so a loaded test machine slows the
 * cold first kernel-text check without getting it denied (test/integration/
 * real-boot-busy-host.test.ts). Tests of the bounds set their own.
 */
import { bootBase, createMachineDetailed, type MachineBase, type MachineConfig } from '../../machine/machine.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';
import { fixtures } from './fixtures.ts';

/** Builds and boots a machine trusting the fixture certificate (plus `extra` key files). */
export async function bootRealMachine(extra: Partial<MachineConfig> = {}): Promise<SimulatedMachine> {
  const m = await createMachineDetailed({ kernel: 'real', keys: { pubkeys: [], certs: [fixtures.signingKeyDer], revoked: [] }, ...extra });
  if (!m.ok) throw new Error(m.error.message);
  const mark = m.value.verdictMark();
  const b = await m.value.boot();
  if (b.outcome !== 'allowed') {
    const why = m.value.deniedSince(mark);
    await m.value.dispose();
    throw new Error(`boot: ${b.reason}${why.length > 0 ? `; verifier: ${why.join(' | ')}` : ''}`);
  }
  return m.value;
}

/** This test process's booted bases, by configuration (ava runs each test file in its own process). */
const bases = new Map<string, Promise<MachineBase>>();

/**
 * A machine in the booted state of {@link bootRealMachine}`(extra)`, forked from a base this
 * test process boots once per configuration (machine/machine-fork.ts): for tests of what a
 * booted machine does, never of boot itself. `extra` must be plain data (no policy, observer
 * or log: those are per machine); the fork is the caller's to dispose, and the file disposes
 * the bases with `test.after.always(disposeForkBases)`.
 */
export async function forkRealMachine(extra: Partial<MachineConfig> = {}): Promise<SimulatedMachine> {
  if (extra.policy || extra.observer || extra.log || extra.image)
    throw new Error('forkRealMachine takes plain configuration only: use bootRealMachine for a policy, observer, log or image');
  const key = JSON.stringify(extra);
  let base = bases.get(key);
  if (!base) {
    base = bootBase({ kernel: 'real', keys: { pubkeys: [], certs: [fixtures.signingKeyDer], revoked: [] }, ...extra }, { warm: 2 }).then((b) => {
      if (!b.ok) throw new Error(b.error.message);
      return b.value;
    });
    bases.set(key, base);
  }
  const f = await (await base).fork();
  if (!f.ok) throw new Error(`fork: ${f.error}`);
  return f.value;
}

/** Stops the bases {@link forkRealMachine} booted in this process. */
export async function disposeForkBases(): Promise<void> {
  const all = [...bases.values()];
  bases.clear();
  await Promise.all(all.map(async (b) => (await b.catch(() => undefined))?.dispose()));
}

/** The EPT bits of the frame behind a kernel virtual address of the booted guest. */
export function eptOf(m: SimulatedMachine, va: bigint): number {
  const frame = m.vmm.core.vcpus[0]!.translateForCore(va);
  if (frame === undefined) throw new Error(`0x${va.toString(16)} is not mapped`);
  return m.vmm.core.ept.get(frame);
}
