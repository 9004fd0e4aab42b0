/**
 * MSR filtering, shaped like KVM's `KVM_X86_SET_MSR_FILTER` (Documentation/virt/kvm/api.rst,
 * 4.97): up to 16 ranges, each with READ and/or WRITE flags, a base index, a count and a
 * bitmap in which a 1 bit allows the access and a 0 bit denies it; MSRs that no range covers
 * for the operation get the default action. The first range that covers the MSR for the
 * operation decides. A denied access exits to the VMM (KVM_EXIT_X86_RDMSR / WRMSR with
 * reason KVM_MSR_EXIT_REASON_FILTER), which answers allow, inject #GP, or stop.
 *
 * The VMM installs the filter (policy); the core evaluates it on every rdmsr/wrmsr
 * (mechanism), as KVM does in kvm_msr_allowed().
 */
import { type Result, err, ok } from '../../shared/result.ts';

/** `KVM_MSR_FILTER_READ`. */
export const MSR_FILTER_READ = 1 << 0;
/** `KVM_MSR_FILTER_WRITE`. */
export const MSR_FILTER_WRITE = 1 << 1;
/** `KVM_MSR_FILTER_MAX_RANGES`. */
export const MSR_FILTER_MAX_RANGES = 16;
/** `KVM_MSR_FILTER_MAX_BITMAP_SIZE` (bytes): 0x600, i.e. 12,288 MSRs per range. */
export const MSR_FILTER_MAX_BITMAP_BYTES = 0x600;

/** One range (`struct kvm_msr_filter_range`). */
export interface MsrFilterRange {
  /** MSR_FILTER_READ and/or MSR_FILTER_WRITE. */
  readonly flags: number;
  /** First MSR index the bitmap covers. */
  readonly base: number;
  /** Number of MSRs in the bitmap. */
  readonly nmsrs: number;
  /** Bit i (LSB first) allows MSR base + i; a 0 bit denies it. */
  readonly bitmap: Uint8Array;
}

/** A filter (`struct kvm_msr_filter`). */
export interface MsrFilter {
  /** Action for MSRs no range covers: `allow` (KVM_MSR_FILTER_DEFAULT_ALLOW) or `deny`. */
  readonly defaultAction: 'allow' | 'deny';
  readonly ranges: readonly MsrFilterRange[];
}

/** The filter KVM starts with: everything allowed. */
export const ALLOW_ALL_MSRS: MsrFilter = { defaultAction: 'allow', ranges: [] };

/** Checks a filter's shape as KVM's ioctl does (-EINVAL cases), naming the problem. */
export function validateMsrFilter(filter: MsrFilter): Result<MsrFilter, string> {
  if (filter.ranges.length > MSR_FILTER_MAX_RANGES) {
    return err(`an MSR filter has at most ${MSR_FILTER_MAX_RANGES} ranges, got ${filter.ranges.length}`);
  }
  for (const [i, r] of filter.ranges.entries()) {
    if ((r.flags & ~(MSR_FILTER_READ | MSR_FILTER_WRITE)) !== 0 || r.flags === 0) {
      return err(`range ${i}: flags must be READ and/or WRITE, got ${r.flags}`);
    }
    if (!Number.isInteger(r.base) || r.base < 0 || r.base > 0xffffffff) return err(`range ${i}: bad base ${r.base}`);
    if (!Number.isInteger(r.nmsrs) || r.nmsrs <= 0) return err(`range ${i}: nmsrs must be positive`);
    const bytes = Math.ceil(r.nmsrs / 8);
    if (bytes > MSR_FILTER_MAX_BITMAP_BYTES) return err(`range ${i}: bitmap of ${bytes} bytes exceeds ${MSR_FILTER_MAX_BITMAP_BYTES}`);
    if (r.bitmap.length < bytes) return err(`range ${i}: bitmap has ${r.bitmap.length} bytes, ${bytes} needed for ${r.nmsrs} MSRs`);
  }
  return ok(filter);
}

/** True when the filter allows `op` on `msr` (kvm_msr_allowed()). */
export function msrAllowed(filter: MsrFilter, msr: number, op: 'read' | 'write'): boolean {
  const flag = op === 'read' ? MSR_FILTER_READ : MSR_FILTER_WRITE;
  for (const r of filter.ranges) {
    if ((r.flags & flag) === 0) continue;
    if (msr >= r.base && msr < r.base + r.nmsrs) {
      const bit = msr - r.base;
      return (((r.bitmap[bit >> 3] as number) >> (bit & 7)) & 1) === 1;
    }
  }
  return filter.defaultAction === 'allow';
}

/**
 * Builds a filter that denies writes to `msrs` (each in its own one-MSR range) and allows
 * everything else: the shape a VMM uses to pin MSRs.
 */
export function denyWritesFilter(msrs: readonly number[]): MsrFilter {
  if (msrs.length > MSR_FILTER_MAX_RANGES) throw new RangeError(`at most ${MSR_FILTER_MAX_RANGES} MSRs`);
  return {
    defaultAction: 'allow',
    ranges: msrs.map((msr) => ({ flags: MSR_FILTER_WRITE, base: msr, nmsrs: 1, bitmap: Uint8Array.of(0) })),
  };
}
