/**
 * The CR-write filter the VMM installs, after Sean Christopherson's review of Heki v3
 * ("userspace must control pinning; the uAPI could look very similar to MSR filtering").
 * Per control register, a mask of bits: a mov-to-CR that changes any masked bit exits to the
 * VMM, which answers allow, inject #GP, or stop. Descriptor-table writes (lidt, lgdt) have
 * one switch, like VMX's "descriptor-table exiting" control.
 */

/** The filter: which CR bits and which descriptor-table writes exit to the VMM. */
export interface CrFilter {
  /** CR0 bits whose change exits. */
  readonly cr0: bigint;
  /** CR4 bits whose change exits. */
  readonly cr4: bigint;
  /** Whether every CR3 write exits. */
  readonly cr3: boolean;
  /** Whether lidt and lgdt exit. */
  readonly descriptorTables: boolean;
}

/** No filtering: the state a new VM starts in. */
export const NO_CR_FILTER: CrFilter = { cr0: 0n, cr4: 0n, cr3: false, descriptorTables: false };

/** Bits of the write from `old` to `value` that the filter wants to see (0n: none). */
export function filteredCrChange(filter: CrFilter, cr: 0 | 3 | 4, old: bigint, value: bigint): bigint {
  if (cr === 3) return filter.cr3 && old !== value ? old ^ value : 0n;
  const mask = cr === 0 ? filter.cr0 : filter.cr4;
  return (old ^ value) & mask;
}
