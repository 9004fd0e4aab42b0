/**
 * The hypercall table, like the switch in KVM's kvm_emulate_hypercall(). TypeScript checks
 * that every number in shared/abi.ts `HC` has a handler. Each handler keeps the contract in
 * context.ts.
 */
import { KVM_STATUS, isHypercallNr, HC, type HypercallNr } from '../../shared/abi.ts';
import type { VmCore } from '../core/vm-core.ts';
import type { Vcpu } from '../vcpu/vcpu.ts';
import type { HypercallArgs, HypercallHandler } from './context.ts';
import { lockCrUpdate } from './lock-cr-update.ts';
import { protectMemory } from './protect-memory.ts';
import { endBoot } from './end-boot.ts';
import { loadModule } from './load-module.ts';
import { unloadModule } from './unload-module.ts';
import { freeModuleInit } from './free-module-init.ts';
import { textPatch } from './text-patch.ts';
import { setMemory } from './set-memory.ts';
import { loadCode } from './load-code.ts';
import { mapGpaRange } from './map-gpa-range.ts';
import { kexecLoad } from './kexec-load.ts';
import { kexec } from './kexec.ts';

/** Every hypercall the core implements. */
export const HYPERCALL_HANDLERS = {
  [HC.MAP_GPA_RANGE]: mapGpaRange,
  [HC.LOCK_CR_UPDATE]: lockCrUpdate,
  [HC.PROTECT_MEMORY]: protectMemory,
  [HC.HEKI_END_BOOT]: endBoot,
  [HC.HEKI_LOAD_MODULE]: loadModule,
  [HC.HEKI_UNLOAD_MODULE]: unloadModule,
  [HC.HEKI_TEXT_PATCH]: textPatch,
  [HC.HEKI_SET_MEMORY]: setMemory,
  [HC.HEKI_LOAD_CODE]: loadCode,
  [HC.HEKI_KEXEC_LOAD]: kexecLoad,
  [HC.HEKI_KEXEC]: kexec,
  [HC.HEKI_FREE_MODULE_INIT]: freeModuleInit,
} satisfies Record<HypercallNr, HypercallHandler>;

/**
 * Runs hypercall `nr` for `vcpu`. The CPL check is done by the vCPU before this. Unknown
 * numbers return -KVM_ENOSYS; a handler that throws (a bug) returns -KVM_EFAULT and stops
 * the VM, so no exception escapes the core.
 */
export async function dispatchHypercall(core: VmCore, vcpu: Vcpu, nr: number, args: HypercallArgs): Promise<number> {
  if (!isHypercallNr(nr)) return -KVM_STATUS.KVM_ENOSYS;
  const handler: HypercallHandler = HYPERCALL_HANDLERS[nr];
  const u64 = args.map((a) => BigInt.asUintN(64, a)) as unknown as HypercallArgs;
  try {
    return await handler({ core, vcpu }, u64);
  } catch (e) {
    core.stop(`internal error in hypercall ${nr}: ${e instanceof Error ? e.message : String(e)}`);
    return -KVM_STATUS.KVM_EFAULT;
  }
}
