/**
 * KVM_HC_LOCK_CR_UPDATE (13): pin control-register bits (Heki v3).
 * a0 = CR number (0 or 4), a1 = bits to pin, a2 = flags (bit 0: return the ABI version).
 * See docs/hypercalls.md.
 */
import { HEKI_ABI_VERSION, HEKI_LOCK_CR_FLAGS_MASK, HEKI_LOCK_CR_FLAG_ABI_VERSION, KVM_STATUS } from '../../shared/abi.ts';
import { HEKI_CONFIGURE, HEKI_DENIAL } from '../../shared/exit-reasons.ts';
import type { HypercallHandler } from './context.ts';

export const lockCrUpdate: HypercallHandler = ({ core, vcpu }, [a0, a1, a2]) => {
  if ((a2 & ~BigInt(HEKI_LOCK_CR_FLAGS_MASK)) !== 0n) return -KVM_STATUS.KVM_EINVAL;
  if ((a2 & BigInt(HEKI_LOCK_CR_FLAG_ABI_VERSION)) !== 0n) return HEKI_ABI_VERSION;
  if (a0 !== 0n && a0 !== 4n) return -KVM_STATUS.KVM_EINVAL;
  const cr = Number(a0) as 0 | 4;
  const mask = a1;
  if (mask === 0n || core.pins.unpinnable(cr, mask) !== 0n) {
    if (core.denialExits(HEKI_DENIAL.BAD_PIN)) {
      const r = core.exit({ reason: 'heki-denial', vcpu: vcpu.id, denial: { kind: 'bad-pin', cr, mask } });
      if (r.action === 'stop') return -KVM_STATUS.KVM_EPERM;
    }
    return -KVM_STATUS.KVM_EINVAL;
  }
  if (core.configureExits(HEKI_CONFIGURE.LOCK_CR)) {
    const r = core.exit({ reason: 'heki-configure', vcpu: vcpu.id, request: { kind: 'lock-cr', cr, mask } });
    if (r.action !== 'resume') return -KVM_STATUS.KVM_EPERM;
  }
  // Pins only grow: a "weaker" request adds nothing and removes nothing.
  core.pins.pin(cr, mask);
  return 0;
};
