/**
 * KVM_HC_PROTECT_MEMORY (14): set EPT attributes of guest-physical ranges (Heki v2).
 * a0 = guest-physical address of the first `heki_page_list` page. See docs/hypercalls.md.
 *
 * Order: read and validate the whole list (-KVM_EINVAL, nothing changed) -> W^X check
 * (-KVM_EINVAL) -> the VMM's configure exit when enabled (-KVM_EPERM if refused) -> the
 * IMMUTABLE check over every frame (-KVM_EPERM, nothing changed) -> after the end of boot,
 * a request that widens any frame's permissions is refused (-KVM_EPERM) -> apply.
 */
import { KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { HEKI_CONFIGURE, HEKI_DENIAL } from '../../shared/exit-reasons.ts';
import { EPT_FROZEN, EPT_IMMUTABLE, EPT_RWX_MASK, memAttrToEpt } from '../ept/permissions.ts';
import { readPageList } from './page-list-reader.ts';
import { framesOfRange } from '../../shared/addr.ts';
import type { HypercallHandler } from './context.ts';

export const protectMemory: HypercallHandler = ({ core, vcpu }, [a0]) => {
  const list = readPageList(core.memory, a0);
  if (!list.ok) return -KVM_STATUS.KVM_EINVAL;
  const ranges = list.value;
  for (const r of ranges) {
    // W^X: no page may be both writable and executable once someone asked for protection.
    if ((r.permissions & MEM_ATTR.WRITE) !== 0 && (r.permissions & (MEM_ATTR.EXEC | MEM_ATTR.EXEC_USER)) !== 0) {
      return -KVM_STATUS.KVM_EINVAL;
    }
  }
  if (core.configureExits(HEKI_CONFIGURE.PROTECT_MEMORY)) {
    const r = core.exit({ reason: 'heki-configure', vcpu: vcpu.id, request: { kind: 'protect-memory', ranges } });
    if (r.action !== 'resume') return -KVM_STATUS.KVM_EPERM;
  }
  // INVARIANT: check every frame before changing any, so a refused call changes nothing.
  for (const r of ranges) {
    const wanted = memAttrToEpt(r.permissions);
    const { first, end } = framesOfRange(r.pa, r.epa);
    for (let f = first; f < end; f++) {
      const current = core.ept.get(f);
      if ((current & EPT_IMMUTABLE) !== 0 && (current & ~EPT_FROZEN) !== wanted) {
        if (core.denialExits(HEKI_DENIAL.IMMUTABLE)) {
          core.exit({ reason: 'heki-denial', vcpu: vcpu.id, denial: { kind: 'immutable', frame: f, requested: wanted, current } });
        }
        return -KVM_STATUS.KVM_EPERM;
      }
    }
  }
  if (core.auth?.bootEnded) {
    // After boot only the verifier may widen permissions (HEKI_SET_MEMORY); here the guest
    // may only take them away.
    for (const r of ranges) {
      const wanted = memAttrToEpt(r.permissions) & EPT_RWX_MASK;
      const { first, end } = framesOfRange(r.pa, r.epa);
      for (let f = first; f < end; f++) {
        if ((wanted & ~core.ept.get(f)) !== 0) return -KVM_STATUS.KVM_EPERM;
      }
    }
  }
  for (const r of ranges) {
    const wanted = memAttrToEpt(r.permissions);
    const { first, end } = framesOfRange(r.pa, r.epa);
    for (let f = first; f < end; f++) {
      core.ept.setKeepingFrozen(f, wanted);
    }
  }
  return 0;
};
