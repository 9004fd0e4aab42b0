/**
 * The Hyper-V personality's hypercall entry: what the core does with a `vmcall` when the
 * machine runs on Hyper-V (shared/hypervisor-kind.ts), in place of the KVM table of
 * hypervisor/hypercalls/dispatch.ts. The call code is the low 16 bits of the hypercall input
 * value (RCX); the guest is VTL0, the core and the verifier VM are VTL1.
 *
 * Contract: for HvCallVtlCall the value is VTL1's answer, a3 after the call ([hv_vsm.c]
 * `hv_vsm_vtlcall()` returns `(int)args->a3`): 0 or a token, or a negated errno. For every
 * other code it is the hypercall's HV status (RAX bits 15:0, shared/hv-vsm-abi.ts HV_STATUS).
 * A handler that throws (a broken invariant) stops the VM and answers -EFAULT, as the KVM
 * dispatcher does; no exception escapes the core.
 *
 * - HvCallVtlCall (0x11): a0 = VSM function ID, a1..a3 its arguments; an ID outside
 *   0x1FFE0..0x1FFEA answers -EINVAL, as LVBS's `vsm_dispatch()` does.
 * - HvCallVtlReturn (0x12): only VTL1 returns to VTL0; from VTL0 it is HV_STATUS_ACCESS_DENIED.
 * - HvCallModifyVtlProtectionMask (0x0C): a VTL sets only a lower VTL's protections; VTL0 has
 *   none below it, so HV_STATUS_ACCESS_DENIED. VTL1's own changes are the core's EPT updates.
 * - any other code: HV_STATUS_INVALID_HYPERCALL_CODE.
 */
import { HVCALL, HV_STATUS, VSM_ERRNO, isVsmFunctionId, type VsmFunctionId } from '../../shared/hv-vsm-abi.ts';
import type { VmCore } from '../core/vm-core.ts';
import type { Vcpu } from '../vcpu/vcpu.ts';
import type { HypercallArgs } from '../hypercalls/context.ts';
import { VSM_HANDLERS, type VsmHandler } from './vsm-calls.ts';

/** Runs Hyper-V hypercall `code` for `vcpu` (the CPL and stop checks are the vCPU's). */
export async function dispatchHvHypercall(core: VmCore, vcpu: Vcpu, code: number, args: HypercallArgs): Promise<number> {
  switch (code & 0xffff) {
    case HVCALL.VTL_CALL: {
      const [a0, a1, a2, a3] = args.map((a) => BigInt.asUintN(64, a)) as unknown as HypercallArgs;
      if (!isVsmFunctionId(a0)) return -VSM_ERRNO.EINVAL;
      const handler: VsmHandler = VSM_HANDLERS[Number(a0) as VsmFunctionId];
      try {
        return await handler({ core, vcpu }, { a0, a1, a2, a3 });
      } catch (e) {
        core.stop(`internal error in VSM function 0x${a0.toString(16)}: ${e instanceof Error ? e.message : String(e)}`);
        return -VSM_ERRNO.EFAULT;
      }
    }
    case HVCALL.VTL_RETURN:
    case HVCALL.MODIFY_VTL_PROTECTION_MASK:
      return HV_STATUS.ACCESS_DENIED;
    default:
      return HV_STATUS.INVALID_HYPERCALL_CODE;
  }
}
