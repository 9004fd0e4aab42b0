/**
 * The guest kernel's virtual and physical memory layout, as Linux 6.1 x86-64 lays it out
 * without KASLR (Documentation/x86/x86_64/mm.rst, 4-level paging).
 */

/** Direct mapping of all physical memory (page_offset_base). */
export const PAGE_OFFSET = 0xffff_8880_0000_0000n;
/** vmalloc/ioremap space (vmalloc_base). */
export const VMALLOC_START = 0xffff_c900_0000_0000n;
/** Kernel text mapping, mapped to physical 0 (__START_KERNEL_map). */
export const START_KERNEL_MAP = 0xffff_ffff_8000_0000n;
/** Module mapping space: __START_KERNEL_map + KERNEL_IMAGE_SIZE (1 GiB). */
export const MODULES_VADDR = 0xffff_ffff_c000_0000n;
/** End of the module space. */
export const MODULES_END = 0xffff_ffff_ff00_0000n;

/** Physical range the boot page tables are allocated from (below the kernel's 16 MiB load address). */
export const BOOT_TABLES = { start: 0x10_0000n, end: 0xf0_0000n } as const;

/** Where the direct map puts physical address `pa`. */
export function physToVirt(pa: bigint): bigint {
  return PAGE_OFFSET + pa;
}

/** The physical address behind a direct-map address, or undefined. */
export function virtToPhysDirect(va: bigint): bigint | undefined {
  return va >= PAGE_OFFSET && va < PAGE_OFFSET + (1n << 46n) ? va - PAGE_OFFSET : undefined;
}
