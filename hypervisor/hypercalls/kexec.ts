/**
 * heki-sim KVM_HC_HEKI_KEXEC (22): the guest's reboot(LINUX_REBOOT_CMD_KEXEC). Under Heki the
 * old kernel cannot jump to the new one itself: that needs the pins cleared and the locks
 * lifted, which only a VMM reset does. So the request is a `system-event` exit of type
 * `kexec`; the VMM accepts it only when its kexec slot holds a verified image (never the
 * crash slot, which only a panic runs), parks the VM, and resets it into that kernel.
 *
 * Returns 0 when the VMM accepted (the old kernel never runs again: every later vCPU
 * operation reports `stopped` until the VMM resets the VM), -KVM_EPERM when it refused
 * (nothing loaded, or its policy forbids kexec): the old kernel goes on, every protection in
 * place.
 */
import { KVM_STATUS } from '../../shared/abi.ts';
import type { HypercallHandler } from './context.ts';

/** KVM_HC_HEKI_KEXEC: see the file comment. */
export const kexec: HypercallHandler = ({ core, vcpu }) => {
  const r = core.systemEvent(vcpu.id, 'kexec', 'KVM_HC_HEKI_KEXEC');
  return r.action === 'resume' ? 0 : -KVM_STATUS.KVM_EPERM;
};
