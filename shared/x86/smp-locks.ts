/**
 * `.smp_locks`: where the kernel's `lock` prefixes are (arch/x86/include/asm/alternative.h
 * LOCK_PREFIX_HERE: each entry an s32 offset from the entry itself to the prefix byte). On a
 * uniprocessor boot alternatives_smp_unlock() turns each prefix `f0` into the harmless DS
 * override `3e`; alternatives_enable_smp() turns them back when a second CPU comes up
 * (arch/x86/kernel/alternative.c alternatives_smp_lock/unlock). Both skip a zero offset and
 * a prefix outside the owner's text (`_text`.._etext for the core kernel, the module's
 * `.text` section for a module).
 */
import type { KernelImage } from '../kernel-image/vmlinux.ts';
import { readS32Table } from './touchups/tables.ts';

/** The prefixes, as the touch-ups define them. */
export { DS_PREFIX, LOCK_PREFIX } from './touchups/smp-locks.ts';

/**
 * The lock-prefix addresses a `.smp_locks` section lists, as the kernel resolves them: the
 * section's bytes `bytes` at virtual address `vaddr`, kept where the prefix lies in
 * [textStart, textEnd); sorted, without duplicates. A trailing partial entry is ignored
 * (the kernel iterates whole s32 entries up to the section's end).
 */
export function smpLockSites(bytes: Uint8Array, vaddr: bigint, textStart: bigint, textEnd: bigint): bigint[] {
  const inText = readS32Table(bytes, vaddr, true).filter((at) => at >= textStart && at < textEnd);
  return [...new Set(inText)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/**
 * The core kernel's lock prefixes from its `.smp_locks` section, within `_stext`.._etext
 * (the range alternative_instructions() registers, `_text`.._etext, which in this layout
 * starts at `_stext`); none when the image has no `.smp_locks` (a !SMP build).
 */
export function kernelSmpLocks(image: KernelImage): bigint[] {
  const s = image.sectionByName('.smp_locks');
  if (!s) return [];
  return smpLockSites(s.bytes, s.vaddr, image.boundaries._stext, image.boundaries._etext);
}
