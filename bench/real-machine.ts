/**
 * Booting the real kernel for the benchmark: machine/machine.ts `createMachineDetailed` and
 * `boot()`, exactly as `heki run` does, trusting the fixtures' module signing certificate
 * (plus any extra key files).
 */
import type { RequestOf } from '../shared/protocol.ts';
import { createMachineDetailed, type MachineConfig } from '../machine/machine.ts';
import type { SimulatedMachine } from '../machine/simulated-machine.ts';
import type { BenchContext } from './context.ts';

/** A built machine, how long building and booting took, and the guest's boot phases. */
export interface BootedMachine {
  readonly machine: SimulatedMachine;
  readonly createMs: number;
  readonly bootMs: number;
  /** The end-of-boot `kernel-text` request the core sent. */
  readonly bootRequest: RequestOf<'kernel-text'> | undefined;
}

/** Builds and boots the real kernel; the caller disposes the machine. */
export async function bootReal(ctx: BenchContext, extra: Partial<MachineConfig> = {}): Promise<BootedMachine> {
  const t0 = performance.now();
  const m = await createMachineDetailed({
    kernel: 'real',
    keys: { pubkeys: [], certs: [ctx.fixtures.signingKeyDer], revoked: [] },
    ...(ctx.cpu ? { cpu: ctx.cpu } : {}),
    ...extra,
  });
  if (!m.ok) throw new Error(m.error.message);
  const t1 = performance.now();
  // Keep the end-of-boot request: a verifier that replays module loads needs the boot first.
  let bootRequest: RequestOf<'kernel-text'> | undefined;
  const link = m.value.link;
  const verify = link.verify.bind(link);
  link.verify = (r) => {
    if (r.kind === 'kernel-text') bootRequest = { ...r, v: 1, id: 0 } as RequestOf<'kernel-text'>;
    return verify(r);
  };
  const b = await m.value.boot();
  link.verify = verify;
  const t2 = performance.now();
  if (b.outcome !== 'allowed') {
    await m.value.dispose();
    throw new Error(`boot: ${b.reason}`);
  }
  return { machine: m.value, createMs: t1 - t0, bootMs: t2 - t1, bootRequest };
}
