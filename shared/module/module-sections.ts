/**
 * Which sections of a module the loader places, and in which permission group, as Linux 6.1
 * decides it (kernel/module/main.c):
 *
 * - `setup_load_info()` / `rewrite_section_headers()` drop SHF_ALLOC from `.modinfo` and
 *   `__versions` ("track but don't keep"); `layout_and_allocate()` drops it from the per-CPU
 *   section `.data..percpu`, which gets its own per-CPU allocation (`percpu_modalloc`);
 * - `module_enforce_rwx_sections()` refuses a section that is both writable and executable;
 * - `layout_and_allocate()` marks `.data..ro_after_init` and `__jump_table` SHF_RO_AFTER_INIT;
 * - `layout_sections()` then walks the masks in order: executable -> text; allocated and not
 *   writable -> ro; SHF_RO_AFTER_INIT -> ro_after_init; writable -> rw. A section whose name
 *   starts with `.init` (`module_init_layout_section()`) goes to the init layout instead of
 *   the core one (CONFIG_MODULE_UNLOAD=y: `.exit*` stays in core).
 *
 * x86 has no `module_frob_arch_sections()` of its own and ARCH_SHF_SMALL is 0.
 */

import { MEM_ATTR } from '../abi.ts';
import type { Elf64 } from '../elf/elf64.ts';
import { ET_REL, SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS } from '../elf/types.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';

/** A permission group of a layout, in layout order. */
export type SectionGroup = 'text' | 'ro' | 'ro_after_init' | 'rw';
/** The two layouts: core stays while the module is loaded; init is freed after its init. */
export type LayoutPart = 'core' | 'init';

/** Groups in the order layout_sections() places them. */
export const GROUP_ORDER: readonly SectionGroup[] = Object.freeze(['text', 'ro', 'ro_after_init', 'rw'] as const);

/**
 * MEM_ATTR bits each group's pages need once the module is live (module_enable_ro/nx/x with
 * CONFIG_STRICT_MODULE_RWX): text R|X, ro R, ro_after_init R (after init), rw R|W.
 */
export const GROUP_PERMISSIONS: Readonly<Record<SectionGroup, number>> = Object.freeze({
  text: MEM_ATTR.READ | MEM_ATTR.EXEC,
  ro: MEM_ATTR.READ,
  ro_after_init: MEM_ATTR.READ,
  rw: MEM_ATTR.READ | MEM_ATTR.WRITE,
});

/** Section names the kernel marks SHF_RO_AFTER_INIT before layout. */
export const RO_AFTER_INIT_SECTIONS: readonly string[] = Object.freeze(['.data..ro_after_init', '__jump_table']);
/** Section names whose SHF_ALLOC the kernel drops (their bytes are read, never placed). */
export const UNPLACED_SECTIONS: readonly string[] = Object.freeze(['.modinfo', '__versions']);
/** The per-CPU section, placed in the per-CPU area rather than module memory. */
export const PERCPU_SECTION = '.data..percpu';

/** Largest section this code lays out (kvm's biggest is 432 KB). Bounds allocations for NOBITS. */
export const MAX_SECTION_SIZE = 64 * 1024 * 1024;
/** Largest alignment accepted; larger ones cannot be honoured by a page-granular allocator anyway. */
export const MAX_SECTION_ALIGN = 1 << 21;

/** A section the loader places in module memory. */
export interface LoadableSection {
  readonly shndx: number;
  readonly name: string;
  readonly part: LayoutPart;
  readonly group: SectionGroup;
  readonly size: number;
  /** `sh_addralign`, 0 mapped to 1. */
  readonly align: number;
  /** SHT_NOBITS: zero-filled, no file bytes. */
  readonly nobits: boolean;
  /** `sh_flags` as in the file. */
  readonly flags: number;
}

/** The module's per-CPU section. */
export interface PercpuSection {
  readonly shndx: number;
  readonly name: string;
  readonly size: number;
  readonly align: number;
}

/** The sections a module places, in section-index order. */
export interface SectionPlan {
  readonly loadable: readonly LoadableSection[];
  readonly percpu: PercpuSection | undefined;
  /** Allocated sections the kernel reads but does not place (`.modinfo`, `__versions`). */
  readonly unplaced: readonly number[];
  /** Loadable sections by index. */
  readonly byIndex: ReadonlyMap<number, LoadableSection>;
}

/** `find_sec()`: the first SHF_ALLOC section called `name`, or 0. */
export function findSec(elf: Elf64, name: string): number {
  for (const s of elf.sections) if (s.index !== 0 && s.flags & SHF_ALLOC && s.name === name) return s.index;
  return 0;
}

/** Linux 6.1's `module_init_layout_section()` with CONFIG_MODULE_UNLOAD=y: the name starts with `.init`. */
export function isInitSection(name: string): boolean {
  return name.startsWith('.init');
}

/** Decides what the loader does with each allocated section; errors name the section. */
export function planSections(elf: Elf64): Result<SectionPlan, ModuleError> {
  if (elf.type !== ET_REL) return err(moduleError('not-a-module', `ELF type ${elf.type} is not ET_REL: a module is a relocatable object`));
  if (elf.symtabIndex === undefined) return err(moduleError('not-a-module', 'module has no symbol table (.symtab)'));
  const unplaced = UNPLACED_SECTIONS.map((n) => findSec(elf, n)).filter((i) => i !== 0);
  const pcpuIndex = findSec(elf, PERCPU_SECTION);
  const roAfterInit = new Set(RO_AFTER_INIT_SECTIONS.map((n) => findSec(elf, n)).filter((i) => i !== 0));
  const loadable: LoadableSection[] = [];
  let percpu: PercpuSection | undefined;
  for (const s of elf.sections) {
    if (s.index === 0 || !(s.flags & SHF_ALLOC)) continue;
    if (s.flags & SHF_WRITE && s.flags & SHF_EXECINSTR) {
      return err(moduleError('section', `section ${s.name} (index ${s.index}) is writable and executable`, { section: s.name }));
    }
    if (unplaced.includes(s.index)) continue;
    if (s.size > MAX_SECTION_SIZE) {
      return err(moduleError('limits', `section ${s.name} is ${s.size} bytes, more than the ${MAX_SECTION_SIZE} this loader accepts`, { section: s.name }));
    }
    const align = s.addralign === 0 ? 1 : s.addralign;
    if ((align & (align - 1)) !== 0 || align > MAX_SECTION_ALIGN) {
      return err(moduleError('section', `section ${s.name} has alignment ${s.addralign}, not a power of two up to ${MAX_SECTION_ALIGN}`, { section: s.name }));
    }
    if (s.index === pcpuIndex) {
      percpu = { shndx: s.index, name: s.name, size: s.size, align };
      continue;
    }
    let group: SectionGroup;
    if (s.flags & SHF_EXECINSTR) group = 'text';
    else if (!(s.flags & SHF_WRITE)) group = 'ro';
    else if (roAfterInit.has(s.index)) group = 'ro_after_init';
    else group = 'rw';
    loadable.push({
      shndx: s.index,
      name: s.name,
      part: isInitSection(s.name) ? 'init' : 'core',
      group,
      size: s.size,
      align,
      nobits: s.type === SHT_NOBITS,
      flags: s.flags,
    });
  }
  return ok({ loadable, percpu, unplaced, byIndex: new Map(loadable.map((l) => [l.shndx, l])) });
}
