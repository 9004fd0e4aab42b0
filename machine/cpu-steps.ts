/**
 * The steps that act through the boot vCPU as it is, kernel booted or not: reads, writes and
 * instruction fetches at guest-virtual addresses (at CPL 0 or 3), moves to control
 * registers, `wrmsr`, raw hypercalls, and the VMM's debug copy of guest memory to a file.
 * A fault or a negative hypercall status is `denied`: a protection stopped the access.
 */
import { gvaFromRegister } from '../shared/addr.ts';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { statusName } from '../shared/abi.ts';
import type { Vmm } from '../hypervisor/vmm/vmm.ts';
import { SAVE_MEMORY_MAX, type AddressExpr, type Mode, type StepOutcome } from './machine-api.ts';
import type { MachineParts } from './machine-parts.ts';
import { resolveAddress } from './resolve-address.ts';
import { allowed, denied, describeFault, error, fromAccess } from './step-outcome.ts';

/** Runs `f` with the boot vCPU at the CPL of `mode`, then puts the CPL back. */
function withMode<T>(vmm: Vmm, mode: Mode, f: () => T): T {
  const cpu = vmm.bootCpu;
  const old = cpu.cpl;
  cpu.setCpl(mode === 'kernel' ? 0 : 3);
  try {
    return f();
  } finally {
    cpu.setCpl(old);
  }
}

/** `read`: the bytes in hex, or the fault. */
export function read(p: MachineParts, addr: AddressExpr, len: number, mode: Mode): StepOutcome {
  const a = resolveAddress(p, addr);
  if (!a.ok) return error(a.error);
  const r = withMode(p.vmm, mode, () => p.vmm.bootCpu.read(gvaFromRegister(a.value), len));
  return r.ok ? allowed(`read ${Buffer.from(r.value).toString('hex')}`) : denied(describeFault(r.fault));
}

/** `write`. */
export function write(p: MachineParts, addr: AddressExpr, bytes: Uint8Array, mode: Mode): StepOutcome {
  const a = resolveAddress(p, addr);
  if (!a.ok) return error(a.error);
  return fromAccess(
    withMode(p.vmm, mode, () => p.vmm.bootCpu.write(gvaFromRegister(a.value), bytes)),
    `wrote ${bytes.length} byte(s)`,
  );
}

/** `exec`: an instruction fetch. */
export function exec(p: MachineParts, addr: AddressExpr, mode: Mode): StepOutcome {
  const a = resolveAddress(p, addr);
  if (!a.ok) return error(a.error);
  return fromAccess(
    withMode(p.vmm, mode, () => p.vmm.bootCpu.fetch(gvaFromRegister(a.value), 1)),
    'instruction fetched',
  );
}

/** `write-cr`: a full value, or bits set and cleared in the current one. */
export function writeCr(p: MachineParts, cr: 0 | 3 | 4, change: { value?: bigint; set?: bigint; clear?: bigint }): StepOutcome {
  const cpu = p.vmm.bootCpu;
  const value = change.value ?? (cpu.readCr(cr) | (change.set ?? 0n)) & ~(change.clear ?? 0n);
  return fromAccess(cpu.writeCr(cr, value), `CR${cr} = 0x${value.toString(16)}`);
}

/** `write-msr`. */
export function writeMsr(p: MachineParts, msr: number, value: bigint): StepOutcome {
  return fromAccess(p.vmm.bootCpu.wrmsr(msr, value), `MSR 0x${msr.toString(16)} = 0x${value.toString(16)}`);
}

/** `hypercall`: `allowed` when it returns >= 0, `denied` with the status's name otherwise. */
export async function hypercall(p: MachineParts, nr: number, args: readonly bigint[]): Promise<StepOutcome> {
  const [a0 = 0n, a1 = 0n, a2 = 0n, a3 = 0n] = args;
  const ret = await p.vmm.bootCpu.vmcall(nr, a0, a1, a2, a3);
  return ret >= 0 ? allowed(`hypercall ${nr} returned ${ret}`) : denied(`hypercall ${nr} returned ${statusName(ret)}`);
}

/** `save-memory`: guest memory through the VMM's debug copy path, written to `out`. */
export function saveMemory(p: MachineParts, addr: AddressExpr, len: number, out: string): StepOutcome {
  if (!Number.isSafeInteger(len) || len < 1 || len > SAVE_MEMORY_MAX) return error(`save-memory len ${len} is not 1..${SAVE_MEMORY_MAX}`);
  const a = resolveAddress(p, addr);
  if (!a.ok) return error(a.error);
  const bytes = p.vmm.readGuestVirtual(a.value, len);
  if (!bytes.ok) return error(`cannot read ${len} bytes at ${addr}: ${bytes.error}`);
  try {
    writeFileSync(out, bytes.value);
  } catch (e) {
    return error(`cannot write ${out}: ${(e as Error).message}`);
  }
  return allowed(`saved ${len} bytes at 0x${a.value.toString(16)} to ${out}`, { bytes: len, sha256: createHash('sha256').update(bytes.value).digest('hex') });
}
