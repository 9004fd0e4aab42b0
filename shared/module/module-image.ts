/**
 * The module loader's core, bytes in and bytes out, shared by the guest kernel's loader and
 * the verifier's module-end-state plugin so both compute the same end state:
 *
 * 1. strip the signature trailer (an unsigned file is taken whole) and parse the ELF;
 * 2. decide the placed sections (module-sections.ts) and lay them out (layout.ts), or take
 *    someone else's addresses ({@link relocateAt});
 * 3. give every symbol its value (symbols.ts) and apply the relocations (relocate.ts);
 * 4. given the kernel's state ({@link LinkOptions.touchups}), `module_finalize()`'s
 *    paravirt, retpoline, return-thunk, alternatives and `.smp_locks` passes for the CPU
 *    (module-finalize.ts);
 * 5. sort `__mcount_loc` and turn every site into the 5-byte NOP (mcount.ts);
 * 6. given the kernel's state, the COMING notifiers: `__jump_table` and `.static_call_sites`
 *    sorted and marked, their sites set to their keys' current state (module-finalize.ts);
 * 7. read the jump entries (jump-table.ts) and the exports (ksymtab.ts).
 *
 * 8. list the `.smp_locks` lock prefixes (for a later alternatives_enable_smp()).
 *
 * Without {@link LinkOptions.touchups} steps 4 and 6 are skipped (the synthetic kernel of the
 * unit tests has no touch-up tables).
 *
 * TRUST: the input may be attacker-made. Every size is bounded (module-sections.ts), every
 * read is checked against its buffer, and every failure is a {@link ModuleError}; nothing
 * here throws on bad input. Output buffers are fresh copies, never views of the input.
 */

import { parseElf64, type Elf64 } from '../elf/elf64.ts';
import { stripModuleSignature } from '../module-signature.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';
import { readJumpEntries, type ModuleJumpEntry } from './jump-table.ts';
import { readKsymtab, type ModuleExport } from './ksymtab.ts';
import { checkPlan, layoutPlan, type GroupRange, type ModuleLayout, type PercpuPlacement, type PlacedSectionRef, type SectionPlacement } from './layout.ts';
import { nopMcountSites } from './mcount.ts';
import { readModinfo, type Modinfo } from './modinfo.ts';
import { findSec, planSections, type SectionPlan } from './module-sections.ts';
import { PlacedMemory, type PlacedBuffer } from './placed-memory.ts';
import { applyRelocations, type RelocationCounts } from './relocate.ts';
import { simplifySymbols, type SymbolResolver } from './symbols.ts';
import { SHF_EXECINSTR } from '../elf/types.ts';
import { moduleComing, moduleFinalize, sortMcountTable, type ModuleTouchupEnv, type ModuleTouchupReport } from './module-finalize.ts';
import { smpLockSites } from '../x86/smp-locks.ts';

/** A placed section with its final bytes. */
export interface ModuleSectionImage extends SectionPlacement {
  /** The bytes the section must hold in memory: relocated, ftrace sites NOPed. Zeros for NOBITS. */
  readonly bytes: Uint8Array;
  /** SHT_NOBITS (`.bss`): the bytes are zeros and the file holds none. */
  readonly nobits: boolean;
}

/** What relocation at given addresses produces. */
export interface RelocatedModule {
  /** The module name used in messages (the caller's, or `.modinfo`'s `name`). */
  readonly name: string;
  /** Every placed section with its final bytes, in section-index order. */
  readonly sections: readonly ModuleSectionImage[];
  /** The per-CPU section at its per-CPU pointer, with its initial bytes (not relocated: the kernel does not). */
  readonly percpu: (PercpuPlacement & { readonly bytes: Uint8Array }) | undefined;
  /** Exports (`__ksymtab`, `__ksymtab_gpl`) by name. */
  readonly exports: ReadonlyMap<string, bigint>;
  /** Exports with their GPL flag and namespace, in table order. */
  readonly exportList: readonly ModuleExport[];
  /** ftrace sites, sorted; each now holds the 5-byte NOP. */
  readonly mcountSites: readonly bigint[];
  /** Jump-label entries, in table order. */
  readonly jumpEntries: readonly ModuleJumpEntry[];
  /**
   * The lock prefixes of its `.smp_locks` within its `.text` section, sorted (what
   * module_finalize() hands alternatives_smp_module_add(): shared/x86/smp-locks.ts).
   */
  readonly smpLocks: readonly bigint[];
  /** Undefined symbols and the addresses they resolved to. */
  readonly imports: ReadonlyMap<string, bigint>;
  /** Relocations applied, per type. */
  readonly relocations: RelocationCounts;
  /** What module_finalize() and the COMING notifiers did, when the kernel's state was given. */
  readonly touchups: ModuleTouchupReport | undefined;
}

/** A module built by {@link buildModuleImage}. */
export interface ModuleImage extends RelocatedModule {
  /** The ELF (views into the caller's file). */
  readonly elf: Elf64;
  readonly modinfo: Modinfo;
  /** Page-aligned group ranges with the permissions each needs, in address order. */
  readonly groups: readonly GroupRange[];
  readonly layout: ModuleLayout;
}

/** How to link a module. */
export interface LinkOptions {
  /** Address of an exported symbol of the kernel or a loaded module. */
  readonly resolve: SymbolResolver;
  /** Address of `__fentry__`: every ftrace site must call it. */
  readonly fentry: bigint;
  /** Name for messages; default `.modinfo`'s `name`. */
  readonly name?: string;
  /** The kernel's CPU and key state, for module_finalize() and the COMING notifiers. */
  readonly touchups?: ModuleTouchupEnv;
}

/** Options of {@link buildModuleImage}. */
export interface BuildModuleOptions extends LinkOptions {
  /** Page-aligned start of the core layout. */
  readonly base: bigint;
  /** Page-aligned start of the init layout. */
  readonly initBase: bigint;
  /** Per-CPU pointer for `.data..percpu` (required when the module has one). */
  readonly percpuBase?: bigint;
  /**
   * Every placed section's address (and the per-CPU pointer), chosen by the caller instead of
   * laid out from `base` / `initBase`: a module put where a real kernel's module_alloc put it.
   * The placement must pass checkLayout(), the layout rules the verifier enforces.
   */
  readonly placed?: readonly PlacedSectionRef[];
}

/** Strips the trailer and parses the ELF. */
export function parseModuleFile(file: Uint8Array): Result<Elf64, ModuleError> {
  const stripped = stripModuleSignature(file);
  if (!stripped.ok) return err(moduleError('signature-trailer', `module signature trailer: ${stripped.error.message}`));
  const elf = parseElf64(stripped.value);
  if (!elf.ok) return err(moduleError('elf', elf.error.message));
  return ok(elf.value);
}

/**
 * Builds a module the way the guest's loader does: parse, lay out at `base` / `initBase`,
 * link, NOP the ftrace sites. `file` may carry a signature trailer (it is not checked here).
 */
export function buildModuleImage(file: Uint8Array, opts: BuildModuleOptions): Result<ModuleImage, ModuleError> {
  const elf = parseModuleFile(file);
  if (!elf.ok) return elf;
  const modinfo = readModinfo(elf.value);
  if (!modinfo.ok) return modinfo;
  const name = opts.name ?? modinfo.value.name;
  if (name === undefined || name === '') return err(moduleError('modinfo', '.modinfo has no name= entry', { section: '.modinfo' }));
  const plan = planSections(elf.value);
  if (!plan.ok) return plan;
  const layout = opts.placed ? checkPlan(elf.value, plan.value, opts.placed) : layoutPlan(plan.value, opts);
  if (!layout.ok) return layout;
  const placed: PlacedSectionRef[] = [...layout.value.sections, ...(layout.value.percpu ? [layout.value.percpu] : [])];
  const linked = link(elf.value, plan.value, placed, { ...opts, name });
  if (!linked.ok) return linked;
  return ok({ ...linked.value, elf: elf.value, modinfo: modinfo.value, groups: layout.value.groups, layout: layout.value });
}

/**
 * Links a module at addresses someone else chose (the verifier's path): `placed` gives every
 * placed section's address, and the per-CPU section's pointer. It does not judge the layout:
 * call checkLayout() first when the placement is untrusted. Every section the loader places
 * must have an address; extra or unknown entries are errors.
 */
export function relocateAt(
  elf: Elf64,
  placed: readonly PlacedSectionRef[],
  resolve: SymbolResolver,
  fentry: bigint,
  name?: string,
  touchups?: ModuleTouchupEnv,
): Result<RelocatedModule, ModuleError> {
  const plan = planSections(elf);
  if (!plan.ok) return plan;
  let n = name;
  if (n === undefined) {
    const mi = readModinfo(elf);
    n = mi.ok && mi.value.name ? mi.value.name : 'module';
  }
  return link(elf, plan.value, placed, { resolve, fentry, name: n, ...(touchups ? { touchups } : {}) });
}

function link(elf: Elf64, plan: SectionPlan, placed: readonly PlacedSectionRef[], opts: LinkOptions & { name: string }): Result<RelocatedModule, ModuleError> {
  const name = opts.name;
  const addrs = new Map<number, bigint>();
  for (const p of placed) {
    const known = plan.byIndex.has(p.shndx) || plan.percpu?.shndx === p.shndx;
    const secName = elf.sections[p.shndx]?.name ?? `#${p.shndx}`;
    if (!known) return err(moduleError('placement', `${name}: section ${secName} (index ${p.shndx}) is not a section the loader places`, { section: secName }));
    if (addrs.has(p.shndx)) return err(moduleError('placement', `${name}: section ${secName} is placed more than once`, { section: secName }));
    addrs.set(p.shndx, p.addr);
  }
  const buffers = new Map<number, PlacedBuffer>();
  const images: ModuleSectionImage[] = [];
  for (const s of plan.loadable) {
    const addr = addrs.get(s.shndx);
    if (addr === undefined) return err(moduleError('placement', `${name}: section ${s.name} (index ${s.shndx}) has no address`, { section: s.name }));
    const sec = elf.sections[s.shndx]!;
    // slice(): a private copy by memcpy (Uint8Array.from would walk the bytes one by one).
    const bytes = s.nobits ? new Uint8Array(s.size) : elf.sectionBytes(sec).slice();
    buffers.set(s.shndx, { shndx: s.shndx, name: s.name, addr, bytes, exec: (s.flags & SHF_EXECINSTR) !== 0 });
    images.push({ shndx: s.shndx, name: s.name, part: s.part, group: s.group, addr, size: s.size, bytes, nobits: s.nobits });
  }
  let percpu: RelocatedModule['percpu'];
  if (plan.percpu) {
    const addr = addrs.get(plan.percpu.shndx);
    if (addr === undefined)
      return err(moduleError('placement', `${name}: per-CPU section ${plan.percpu.name} has no per-CPU pointer`, { section: plan.percpu.name }));
    percpu = {
      shndx: plan.percpu.shndx,
      name: plan.percpu.name,
      addr,
      size: plan.percpu.size,
      bytes: elf.sectionBytes(elf.sections[plan.percpu.shndx]!).slice(),
    };
  }

  const symbols = simplifySymbols(elf, (shndx) => (plan.byIndex.has(shndx) || plan.percpu?.shndx === shndx ? addrs.get(shndx) : undefined), opts.resolve, name);
  if (!symbols.ok) return symbols;
  const relocations = applyRelocations(elf, buffers, symbols.value, name);
  if (!relocations.ok) return relocations;

  const memory = new PlacedMemory([...buffers.values()]);
  const buf = (secName: string): PlacedBuffer | undefined => buffers.get(findSec(elf, secName));
  const env = opts.touchups;
  const finalized = env ? moduleFinalize([...buffers.values()], env) : undefined;
  const mcount = nopMcountSites(buf('__mcount_loc'), memory, opts.fentry, name);
  if (!mcount.ok) return mcount;
  sortMcountTable(buf('__mcount_loc'), mcount.value);
  let touchups: ModuleTouchupReport | undefined;
  if (env && finalized) {
    const init = images.filter((s) => s.part === 'init').map((s) => [s.addr, s.addr + BigInt(s.size)] as const);
    const coming = moduleComing([...buffers.values()], memory, init, env);
    if (!coming.ok) return err(moduleError('static-calls', `${name}: ${coming.error}`, { section: '.static_call_sites' }));
    touchups = { ...coming.value, lockPrefixesUp: finalized.lockPrefixesUp };
  }
  const jumps = readJumpEntries(buf('__jump_table'), memory, name);
  if (!jumps.ok) return jumps;
  const tables: Array<{ buffer: PlacedBuffer; gpl: boolean }> = [];
  const ks = buf('__ksymtab');
  if (ks) tables.push({ buffer: ks, gpl: false });
  const ksg = buf('__ksymtab_gpl');
  if (ksg) tables.push({ buffer: ksg, gpl: true });
  const exportList = readKsymtab(tables, buf('__ksymtab_strings'), name);
  if (!exportList.ok) return exportList;
  const locks = buf('.smp_locks');
  const textSec = buf('.text');
  const smpLocks = locks && textSec ? smpLockSites(locks.bytes, locks.addr, textSec.addr, textSec.addr + BigInt(textSec.bytes.length)) : [];

  images.sort((a, b) => a.shndx - b.shndx);
  return ok({
    name,
    sections: images,
    percpu,
    exports: new Map(exportList.value.map((e) => [e.name, e.address])),
    exportList: exportList.value,
    mcountSites: mcount.value,
    jumpEntries: jumps.value,
    smpLocks,
    imports: symbols.value.imports,
    relocations: relocations.value,
    touchups,
  });
}
