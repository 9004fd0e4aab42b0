/**
 * A kernel image as the simulator needs it: vmlinux's sections with their load addresses,
 * the linker boundaries, the ftrace, jump-label and static-call patch sites, and the exported
 * symbols, all cross-checked between the ELF file and System.map.
 */

import type { Elf64 } from '../elf/elf64.ts';
import { err, ok, type Result } from '../result.ts';
import { readExports } from './exports.ts';
import { readJumpTable, type JumpEntry } from './jump-table.ts';
import type { KernelImageError } from './kernel-image-errors.ts';
import { buildKernelLayout, readBoundaries, type KernelBoundaries, type KernelSection } from './kernel-layout.ts';
import { readMcountSites, type McountSite } from './mcount.ts';
import { readStaticCalls, type StaticCallTable } from './static-calls.ts';
import type { SystemMap } from './system-map.ts';

/** A parsed, cross-checked kernel image. */
export interface KernelImage {
  /** The decompressed vmlinux bytes. */
  readonly vmlinux: Uint8Array;
  /** Its ELF view. */
  readonly elf: Elf64;
  /** The symbol map. */
  readonly systemMap: SystemMap;
  /** Every section (index 0 excluded) with virtual and physical addresses and bytes. */
  readonly sections: readonly KernelSection[];
  /** The linker-script boundaries. */
  readonly boundaries: KernelBoundaries;
  /** ftrace sites from `__mcount_loc`, sorted by address. */
  readonly mcountSites: readonly McountSite[];
  /** Jump-label entries from `__jump_table`, in table order. */
  readonly jumpEntries: readonly JumpEntry[];
  /** Static call sites (`.static_call_sites`, table order), keys and trampolines. */
  readonly staticCalls: StaticCallTable;
  /** Exported name -> address (what modules may link against). */
  readonly exports: ReadonlyMap<string, bigint>;
  /** The section called `name`. */
  sectionByName(name: string): KernelSection | undefined;
  /** The allocated section containing `vaddr`. */
  sectionAt(vaddr: bigint): KernelSection | undefined;
  /** `len` file-image bytes at kernel virtual address `vaddr` (a view), or undefined. */
  readVirt(vaddr: bigint, len: number): Uint8Array | undefined;
  /** The physical load address of `vaddr`, or undefined outside the PT_LOAD segments. */
  virtToPhys(vaddr: bigint): bigint | undefined;
  /** `name+0xoff` for an address. */
  symbolize(vaddr: bigint): string;
  /** The SHA-256 of the files it was loaded from (load-kernel.ts), when it was loaded from files. */
  readonly source?: KernelImageSource;
}

/** Which files a {@link KernelImage} was loaded from, by content. */
export interface KernelImageSource {
  /** SHA-256 of the vmlinuz, lowercase hex. */
  readonly vmlinuzSha256: string;
  /** SHA-256 of the System.map, lowercase hex. */
  readonly systemMapSha256: string;
}

/** Builds a {@link KernelImage} from a parsed vmlinux and its System.map. */
export function buildKernelImage(vmlinux: Uint8Array, elf: Elf64, systemMap: SystemMap, source?: KernelImageSource): Result<KernelImage, KernelImageError> {
  const layout = buildKernelLayout(elf);
  const boundaries = readBoundaries(systemMap);
  if (!boundaries.ok) return boundaries;
  const mcount = readMcountSites(layout, systemMap);
  if (!mcount.ok) return mcount;
  const jumps = readJumpTable(layout, systemMap);
  if (!jumps.ok) return jumps;
  const staticCalls = readStaticCalls(layout, systemMap);
  if (!staticCalls.ok) return staticCalls;
  const exports = readExports(systemMap);
  if (!exports.ok) return exports;
  const byName = new Map<string, KernelSection>();
  for (const s of layout.sections) if (!byName.has(s.name)) byName.set(s.name, s);
  const text = byName.get('.text');
  if (text === undefined) return err({ kind: 'layout', message: 'vmlinux has no .text section' });
  if (text.vaddr !== boundaries.value._stext) {
    return err({ kind: 'layout', message: 'System.map does not belong to this vmlinux: _stext differs from the .text address' });
  }
  return ok({
    vmlinux,
    elf,
    systemMap,
    sections: layout.sections,
    boundaries: boundaries.value,
    mcountSites: mcount.value,
    jumpEntries: jumps.value,
    staticCalls: staticCalls.value,
    exports: exports.value,
    sectionByName: (name) => byName.get(name),
    sectionAt: (vaddr) => layout.sectionAt(vaddr),
    readVirt: (vaddr, len) => layout.readVirt(vaddr, len),
    virtToPhys: (vaddr) => layout.virtToPhys(vaddr),
    symbolize: (vaddr) => systemMap.symbolize(vaddr),
    ...(source ? { source } : {}),
  });
}
