/**
 * A booted machine on the real Debian 6.1 image, for integration tests. The caller must
 * dispose it (t.teardown), which stops the verifier workers.
 *
 * Its verifier runs with the product's bounds (2 s without progress, 120 s per request): the
 * link fails closed on lack of progress, not by the clock, so a loaded test machine slows the
 * cold first kernel-text check without getting it denied (test/integration/
 * real-boot-busy-host.test.ts). Tests of the bounds set their own.
 */
import { createMachineDetailed, type MachineConfig } from '../../machine/machine.ts';
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

/** The EPT bits of the frame behind a kernel virtual address of the booted guest. */
export function eptOf(m: SimulatedMachine, va: bigint): number {
  const frame = m.vmm.core.vcpus[0]!.translateForCore(va);
  if (frame === undefined) throw new Error(`0x${va.toString(16)} is not mapped`);
  return m.vmm.core.ept.get(frame);
}
