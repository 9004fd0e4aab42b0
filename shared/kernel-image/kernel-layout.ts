/**
 * Where vmlinux's pieces live: each section's virtual and physical address, reads of the
 * file image at a kernel virtual address, and the linker-script boundaries that System.map
 * records (`_stext`, `__start_rodata`, ... from arch/x86/kernel/vmlinux.lds.S).
 */

import { hex } from '../addr.ts';
import type { Elf64 } from '../elf/elf64.ts';
import { PT_LOAD, SHF_ALLOC, SHT_NOBITS } from '../elf/types.ts';
import { err, ok, type Result } from '../result.ts';
import { kernelImageError, type KernelImageError } from './kernel-image-errors.ts';
import type { SystemMap } from './system-map.ts';

/** One section of vmlinux with its load addresses. */
export interface KernelSection {
  /** Index in the ELF section table. */
  readonly index: number;
  readonly name: string;
  /** `sh_type`. */
  readonly type: number;
  /** `sh_flags` (SHF_ALLOC, SHF_WRITE, SHF_EXECINSTR, ...). */
  readonly flags: number;
  /** Link-time virtual address (0 for `.data..percpu`, which is an offset into per-CPU areas). */
  readonly vaddr: bigint;
  /**
   * Physical load address, `p_paddr + (vaddr - p_vaddr)` of the PT_LOAD segment holding the
   * section's file bytes; undefined for sections outside every PT_LOAD.
   */
  readonly paddr: bigint | undefined;
  readonly size: number;
  /** The section's file bytes (a view into vmlinux; empty for SHT_NOBITS). */
  readonly bytes: Uint8Array;
}

/** The linker-script boundaries, from System.map. */
export interface KernelBoundaries {
  readonly _stext: bigint;
  readonly _etext: bigint;
  readonly __start_rodata: bigint;
  readonly __end_rodata: bigint;
  readonly __start_ro_after_init: bigint;
  readonly __end_ro_after_init: bigint;
  readonly _sdata: bigint;
  readonly _edata: bigint;
  readonly __init_begin: bigint;
  readonly __init_end: bigint;
  readonly __bss_start: bigint;
  readonly __bss_stop: bigint;
  readonly __fentry__: bigint;
}

/** The boundary symbols every x86-64 vmlinux defines. */
export const BOUNDARY_SYMBOLS = [
  '_stext',
  '_etext',
  '__start_rodata',
  '__end_rodata',
  '__start_ro_after_init',
  '__end_ro_after_init',
  '_sdata',
  '_edata',
  '__init_begin',
  '__init_end',
  '__bss_start',
  '__bss_stop',
  '__fentry__',
] as const satisfies readonly (keyof KernelBoundaries)[];

/** The file-backed virtual ranges of vmlinux and the sections inside them. */
export interface KernelLayout {
  readonly sections: readonly KernelSection[];
  /**
   * `len` bytes of the file image at kernel virtual address `vaddr` (a view), or undefined
   * unless all of them are inside one PT_LOAD segment's file bytes. Segment padding between
   * sections and the zeros the file stores for .bss are file bytes too.
   */
  readVirt(vaddr: bigint, len: number): Uint8Array | undefined;
  /** The physical load address of `vaddr`, when it is inside a PT_LOAD segment. */
  virtToPhys(vaddr: bigint): bigint | undefined;
  /** The allocated section (with a kernel-half address) containing `vaddr`. */
  sectionAt(vaddr: bigint): KernelSection | undefined;
}

interface Segment {
  /** `p_vaddr`. */
  readonly vaddr: bigint;
  /** Where the segment's image sits in the kernel's virtual address space (see below). */
  readonly kvaddr: bigint;
  readonly kvend: bigint;
  readonly paddr: bigint;
  readonly offset: number;
  readonly filesz: number;
}

/** Kernel-half addresses start here; the per-CPU segment links at 0 and is not one. */
const KERNEL_HALF = 0xffff800000000000n;
/**
 * `__START_KERNEL_map` (arch/x86/include/asm/page_64_types.h): the kernel image is mapped at
 * virtual = physical + this. The per-CPU segment is linked at 0 (`PERCPU_VADDR(..., 0, ...)`
 * in arch/x86/kernel/vmlinux.lds.S) but its initial image is loaded at `p_paddr`, so it is
 * visible at `__START_KERNEL_map + p_paddr` (ffffffff83044000 = __init_begin in the fixture).
 */
const START_KERNEL_MAP = 0xffffffff80000000n;

/** Builds the layout from vmlinux's program and section headers. */
export function buildKernelLayout(elf: Elf64): KernelLayout {
  const segments: Segment[] = elf.programHeaders
    .filter((p) => p.type === PT_LOAD)
    .map((p) => {
      const kvaddr = p.vaddr >= KERNEL_HALF ? p.vaddr : START_KERNEL_MAP + p.paddr;
      return { vaddr: p.vaddr, kvaddr, kvend: kvaddr + BigInt(p.memsz), paddr: p.paddr, offset: p.offset, filesz: p.filesz };
    });
  const kernelSegments = [...segments].sort((a, b) => (a.kvaddr < b.kvaddr ? -1 : 1));

  const sections: KernelSection[] = elf.sections
    .filter((s) => s.index !== 0)
    .map((s) => {
      // Place the section by file offset: that also finds the per-CPU segment (p_vaddr 0).
      const seg =
        s.flags & SHF_ALLOC
          ? (segments.find((g) => s.type !== SHT_NOBITS && s.offset >= g.offset && s.offset + s.size <= g.offset + g.filesz) ??
            segments.find((g) => s.addr >= g.vaddr && s.addr + BigInt(s.size) <= g.vaddr + (g.kvend - g.kvaddr)))
          : undefined;
      return {
        index: s.index,
        name: s.name,
        type: s.type,
        flags: s.flags,
        vaddr: s.addr,
        paddr: seg === undefined ? undefined : seg.paddr + (s.addr - seg.vaddr),
        size: s.size,
        bytes: elf.sectionBytes(s),
      };
    });
  const allocated = sections.filter((s) => s.flags & SHF_ALLOC && s.vaddr >= KERNEL_HALF);

  function segmentAt(vaddr: bigint): Segment | undefined {
    for (const s of kernelSegments) if (vaddr >= s.kvaddr && vaddr < s.kvend) return s;
    return undefined;
  }

  return {
    sections,
    readVirt(vaddr, len) {
      if (!Number.isSafeInteger(len) || len < 0) return undefined;
      const seg = segmentAt(vaddr);
      if (seg === undefined) return undefined;
      const rel = Number(vaddr - seg.kvaddr);
      // TRUST: only file-backed bytes; the zero-filled tail (memsz > filesz) is not in the file.
      if (rel + len > seg.filesz) return undefined;
      return elf.bytes.subarray(seg.offset + rel, seg.offset + rel + len);
    },
    virtToPhys(vaddr) {
      const seg = segmentAt(vaddr);
      return seg === undefined ? undefined : seg.paddr + (vaddr - seg.kvaddr);
    },
    sectionAt(vaddr) {
      return allocated.find((s) => vaddr >= s.vaddr && vaddr < s.vaddr + BigInt(s.size));
    },
  };
}

/** Looks up every boundary symbol; a missing one is an error naming it. */
export function readBoundaries(map: SystemMap): Result<KernelBoundaries, KernelImageError> {
  const out: Partial<Record<keyof KernelBoundaries, bigint>> = {};
  for (const name of BOUNDARY_SYMBOLS) {
    const a = map.address(name);
    if (a === undefined) return err(kernelImageError('missing-symbol', `System.map has no ${name} symbol`));
    out[name] = a;
  }
  const b = out as KernelBoundaries;
  // INVARIANT (vmlinux.lds.S): text, rodata, data, init and bss come in this order.
  const order: (keyof KernelBoundaries)[] = [
    '_stext',
    '_etext',
    '__start_rodata',
    '__end_rodata',
    '_sdata',
    '_edata',
    '__init_begin',
    '__init_end',
    '__bss_start',
    '__bss_stop',
  ];
  for (let i = 1; i < order.length; i++) {
    const prev = order[i - 1]!;
    const cur = order[i]!;
    if (b[prev] > b[cur]) return err(kernelImageError('layout', `${prev} (${hex(b[prev])}) is above ${cur} (${hex(b[cur])})`));
  }
  return ok(b);
}
