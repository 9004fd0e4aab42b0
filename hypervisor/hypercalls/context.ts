/**
 * What a hypercall handler gets, and the contract every handler keeps.
 *
 * Contract (like KVM's kvm_emulate_hypercall() cases): a handler returns the value left in
 * RAX: 0 or a positive result on success, a negated KVM status (shared/abi.ts) on failure.
 * It validates every argument before it changes anything, so a failing call changes
 * nothing. It never throws for bad guest input; the dispatcher turns a throw (a broken
 * invariant) into -KVM_EFAULT and stops the VM.
 */
import type { VmCore } from '../core/vm-core.ts';
import type { Vcpu } from '../vcpu/vcpu.ts';

/** The caller of a hypercall. */
export interface HypercallContext {
  readonly core: VmCore;
  readonly vcpu: Vcpu;
}

/** a0..a3 as the guest passed them (u64). */
export type HypercallArgs = readonly [bigint, bigint, bigint, bigint];

/** One hypercall's implementation; authenticated ones resolve once the verdict is applied. */
export type HypercallHandler = (ctx: HypercallContext, args: HypercallArgs) => number | Promise<number>;
