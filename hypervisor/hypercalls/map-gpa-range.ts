/**
 * KVM_HC_MAP_GPA_RANGE (12): the guest tells the host that a guest-physical range became
 * shared (decrypted) or private (encrypted). a0 = page-aligned gpa, a1 = number of 4 KiB
 * pages, a2 = attributes (shared/abi.ts KVM_MAP_GPA_RANGE). See docs/hypercalls.md.
 *
 * In KVM (arch/x86/kvm/x86.c, Linux 5.14) this call exits to userspace (KVM_EXIT_HYPERCALL)
 * when the VMM enabled it with KVM_CAP_EXIT_HYPERCALL, and returns -KVM_ENOSYS otherwise; the
 * VMM then converts the range (today with KVM_SET_MEMORY_ATTRIBUTES). Here the VMM enables it
 * by creating the VM in protected-memory mode, and the core applies the conversion itself:
 * the VMM has no policy to add (a guest may always share or take back its own memory), and
 * the attribute must live in the core, out of the VMM's reach, because it is what keeps the
 * VMM from reading private pages.
 *
 * Order: protected mode (-KVM_ENOSYS) -> a0 aligned, a1 non-zero, the range inside guest
 * memory (-KVM_EINVAL, as KVM's own alignment and overflow checks) -> attribute bits known
 * and the page-size hint 0..2 (-KVM_EINVAL) -> apply. Contents are kept across a conversion.
 */
import { KVM_MAP_GPA_RANGE, KVM_MAP_GPA_RANGE_ATTR_MASK, KVM_MAP_GPA_RANGE_MAX_PAGE_SZ, KVM_MAP_GPA_RANGE_PAGE_SZ_MASK, KVM_STATUS } from '../../shared/abi.ts';
import type { HypercallHandler } from './context.ts';
import { gpa, gpaToGfn } from '../../shared/addr.ts';

const PAGE = 4096n;

export const mapGpaRange: HypercallHandler = ({ core }, [a0, a1, a2]) => {
  const attrs = core.memoryAttributes;
  if (!attrs.protected) return -KVM_STATUS.KVM_ENOSYS;
  if (a0 % PAGE !== 0n || a1 === 0n) return -KVM_STATUS.KVM_EINVAL;
  // INVARIANT: checked in bigint before any conversion to number, so a huge a1 cannot wrap.
  if (a0 + a1 * PAGE > core.memory.size) return -KVM_STATUS.KVM_EINVAL;
  if ((a2 & ~BigInt(KVM_MAP_GPA_RANGE_ATTR_MASK)) !== 0n) return -KVM_STATUS.KVM_EINVAL;
  if (Number(a2 & BigInt(KVM_MAP_GPA_RANGE_PAGE_SZ_MASK)) > KVM_MAP_GPA_RANGE_MAX_PAGE_SZ) return -KVM_STATUS.KVM_EINVAL;
  const priv = (a2 & BigInt(KVM_MAP_GPA_RANGE.ENCRYPTED)) !== 0n;
  // INVARIANT: [a0, a0 + a1 pages) lies inside guest memory (checked above).
  attrs.setPrivate(gpaToGfn(gpa(a0)), Number(a1), priv);
  return 0;
};
