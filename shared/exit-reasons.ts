/**
 * Why the core leaves guest execution and hands control to the VMM (a "VM exit"), as the
 * VMM sees it. The shapes of the exits live in hypervisor/exits/exit.ts; the names and the
 * Heki exit masks are shared so that tools and docs use one vocabulary.
 *
 * The Heki masks follow Heki v3's `KVM_CAP_HEKI_CONFIGURE` and `KVM_CAP_HEKI_DENIAL`: the VMM
 * enables, by bitmask, which configuration requests and which denials exit to it.
 */

/** Every exit reason. */
export const EXIT_REASONS = [
  /** A guest access the EPT refused (gpa, access kind, mode). */
  'ept-violation',
  /** A mov-to-CR that the VMM's CR-write filter asked to see. */
  'cr-write',
  /** A wrmsr that the VMM's MSR filter denies (KVM_EXIT_X86_WRMSR with reason FILTER). */
  'msr-write',
  /** A rdmsr that the VMM's MSR filter denies (KVM_EXIT_X86_RDMSR with reason FILTER). */
  'msr-read',
  /** An lidt/lgdt that the VMM's descriptor-table filter asked to see. */
  'dt-write',
  /** A Heki configuration request (pin a CR, protect memory), when enabled by mask. */
  'heki-configure',
  /** A Heki denial (a pinned bit cleared, an immutable page changed), when enabled by mask. */
  'heki-denial',
  /**
   * A lifecycle event the guest asked for (KVM_EXIT_SYSTEM_EVENT): reset, crash, shutdown,
   * hibernate, or running a loaded kexec kernel (shared/platform-io.ts).
   */
  'system-event',
  /** A verified kexec image the VMM may stage (KVM_HC_HEKI_KEXEC_LOAD, after the verifier allowed it). */
  'kexec-load',
] as const;

/** One exit reason. */
export type ExitReason = (typeof EXIT_REASONS)[number];

/** `KVM_CAP_HEKI_CONFIGURE` mask bits: which configuration requests exit to the VMM. */
export const HEKI_CONFIGURE = {
  LOCK_CR: 1 << 0,
  PROTECT_MEMORY: 1 << 1,
} as const;

/** `KVM_CAP_HEKI_DENIAL` mask bits: which denials exit to the VMM. */
export const HEKI_DENIAL = {
  /** A mov-to-CR tried to clear a pinned bit. */
  CR_PIN: 1 << 0,
  /** A PROTECT_MEMORY request tried to change an IMMUTABLE page. */
  IMMUTABLE: 1 << 1,
  /** A LOCK_CR_UPDATE asked to pin a bit that is not pinnable. */
  BAD_PIN: 1 << 2,
  /** The verifier denied an authenticated change (or was unavailable). */
  VERIFICATION: 1 << 3,
} as const;
