/**
 * Module memory layout, both ways:
 *
 * - {@link layoutModule} lays a module out the way Linux 6.1's `layout_sections()` does with
 *   CONFIG_STRICT_MODULE_RWX: per layout (core, init), the groups text | ro | ro_after_init |
 *   rw in that order, each section aligned to its `sh_addralign` (`module_get_offset()`), and
 *   every group boundary page-aligned (`strict_align()`), so no page holds two permissions.
 *   The guest's loader uses it.
 * - {@link checkLayout} validates a placement someone else chose. The verifier uses it: it does
 *   not trust the guest's layout, only that the layout is one the permissions can be enforced on.
 */

import { PAGE_SIZE_N, hex } from '../addr.ts';
import type { Elf64 } from '../elf/elf64.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';
import { GROUP_ORDER, GROUP_PERMISSIONS, planSections, type LayoutPart, type SectionGroup, type SectionPlan } from './module-sections.ts';

/**
 * The x86-64 module area with KASLR (arch/x86/include/asm/pgtable_64_types.h, 6.1):
 * `MODULES_VADDR = __START_KERNEL_map + KERNEL_IMAGE_SIZE` (1 GiB), `MODULES_END = 0xffffffffff000000`.
 */
export const MODULES_VADDR = 0xffffffffc0000000n;
/** End of the module area (exclusive). */
export const MODULES_END = 0xffffffffff000000n;

const U64_END = 1n << 64n;

/** A placed section of a module. */
export interface SectionPlacement {
  readonly shndx: number;
  readonly name: string;
  readonly part: LayoutPart;
  readonly group: SectionGroup;
  readonly addr: bigint;
  readonly size: number;
}

/** The per-CPU section and the per-CPU pointer it was given. */
export interface PercpuPlacement {
  readonly shndx: number;
  readonly name: string;
  /** The module's per-CPU pointer (`mod_percpu(mod)`): an offset into every CPU's area, not module memory. */
  readonly addr: bigint;
  readonly size: number;
}

/** A page-aligned range [start, end) of one group, with the MEM_ATTR bits it needs. */
export interface GroupRange {
  readonly part: LayoutPart;
  readonly group: SectionGroup;
  readonly start: bigint;
  readonly end: bigint;
  readonly permissions: number;
}

/** A module's placement. */
export interface ModuleLayout {
  /** Every placed section, in section-index order. */
  readonly sections: readonly SectionPlacement[];
  /** The per-CPU section, when the module has one. */
  readonly percpu: PercpuPlacement | undefined;
  /** Page-aligned group ranges, in address order. */
  readonly groups: readonly GroupRange[];
}

/** Where {@link layoutModule} puts things. */
export interface LayoutOptions {
  /** Start of the core layout; page-aligned. */
  readonly base: bigint;
  /** Start of the init layout; page-aligned. */
  readonly initBase: bigint;
  /** The per-CPU pointer for `.data..percpu`; required when the module has that section. */
  readonly percpuBase?: bigint;
}

const alignUp = (v: bigint, a: bigint): bigint => (v + a - 1n) & ~(a - 1n);
const pageDown = (v: bigint): bigint => v & ~(PAGE_SIZE_N - 1n);
const pageUp = (v: bigint): bigint => alignUp(v, PAGE_SIZE_N);

/** Lays the module out at `base` (core) and `initBase` (init), as layout_sections() does. */
export function layoutModule(elf: Elf64, opts: LayoutOptions): Result<ModuleLayout, ModuleError> {
  const plan = planSections(elf);
  if (!plan.ok) return plan;
  return layoutPlan(plan.value, opts);
}

/** {@link layoutModule} for an already computed plan. */
export function layoutPlan(plan: SectionPlan, opts: LayoutOptions): Result<ModuleLayout, ModuleError> {
  for (const [what, v] of [
    ['base', opts.base],
    ['initBase', opts.initBase],
  ] as const) {
    if (v < 0n || v >= U64_END || v % PAGE_SIZE_N !== 0n) return err(moduleError('placement', `layout ${what} ${hex(v)} is not a page-aligned u64 address`));
  }
  const sections: SectionPlacement[] = [];
  const groups: GroupRange[] = [];
  for (const part of ['core', 'init'] as const) {
    let cursor = part === 'core' ? opts.base : opts.initBase;
    for (const group of GROUP_ORDER) {
      const start = cursor;
      for (const s of plan.loadable) {
        if (s.part !== part || s.group !== group) continue;
        const addr = alignUp(cursor, BigInt(s.align));
        sections.push({ shndx: s.shndx, name: s.name, part, group, addr, size: s.size });
        cursor = addr + BigInt(s.size);
      }
      cursor = pageUp(cursor);
      if (cursor >= U64_END)
        return err(moduleError('placement', `the ${part} layout does not fit below 2^64 from ${hex(part === 'core' ? opts.base : opts.initBase)}`));
      if (cursor > start) groups.push({ part, group, start, end: cursor, permissions: GROUP_PERMISSIONS[group] });
    }
  }
  sections.sort((a, b) => a.shndx - b.shndx);
  let percpu: PercpuPlacement | undefined;
  if (plan.percpu) {
    const p = plan.percpu;
    if (opts.percpuBase === undefined)
      return err(moduleError('placement', `module has a per-CPU section ${p.name}; a percpuBase is needed`, { section: p.name }));
    if (opts.percpuBase < 0n || opts.percpuBase % BigInt(p.align) !== 0n) {
      return err(moduleError('placement', `percpuBase ${hex(opts.percpuBase)} is not aligned to ${p.name}'s ${p.align}`, { section: p.name }));
    }
    percpu = { shndx: p.shndx, name: p.name, addr: opts.percpuBase, size: p.size };
  }
  // The two layouts must not overlap each other.
  const core = groups.filter((g) => g.part === 'core');
  const init = groups.filter((g) => g.part === 'init');
  const span = (gs: GroupRange[]): [bigint, bigint] | undefined => (gs.length ? [gs[0]!.start, gs[gs.length - 1]!.end] : undefined);
  const c = span(core);
  const i = span(init);
  if (c && i && c[0] < i[1] && i[0] < c[1]) {
    return err(moduleError('placement', `core layout [${hex(c[0])}, ${hex(c[1])}) and init layout [${hex(i[0])}, ${hex(i[1])}) overlap`));
  }
  groups.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
  return ok({ sections, percpu, groups });
}

/** A placement to check: what the guest says it did. */
export interface PlacedSectionRef {
  readonly shndx: number;
  readonly addr: bigint;
  readonly size: number;
}

/** Options of {@link checkLayout}. */
export interface CheckLayoutOptions {
  /** Where module memory may be; default the x86-64 module area [MODULES_VADDR, MODULES_END). */
  readonly area?: { readonly start: bigint; readonly end: bigint };
}

/**
 * Validates a placement chosen by someone else: every placed (loadable) section and the
 * per-CPU section exactly once, nothing else; each with its ELF size, aligned to its
 * `sh_addralign`, inside the module area (per-CPU excepted: its address is a per-CPU
 * pointer); no two sections overlapping; and no 4 KiB page holding bytes of sections of
 * different groups (core text and init text count as different groups). Errors name the
 * section. Returns the placement with groups and the page-aligned ranges of each group.
 */
export function checkLayout(elf: Elf64, placed: readonly PlacedSectionRef[], opts: CheckLayoutOptions = {}): Result<ModuleLayout, ModuleError> {
  const plan = planSections(elf);
  if (!plan.ok) return plan;
  return checkPlan(elf, plan.value, placed, opts);
}

/** {@link checkLayout} for an already computed plan. */
export function checkPlan(
  elf: Elf64,
  plan: SectionPlan,
  placed: readonly PlacedSectionRef[],
  opts: CheckLayoutOptions = {},
): Result<ModuleLayout, ModuleError> {
  const area = opts.area ?? { start: MODULES_VADDR, end: MODULES_END };
  const nameOf = (shndx: number): string => elf.sections[shndx]?.name ?? `#${shndx}`;
  const bad = (shndx: number, message: string): { ok: false; error: ModuleError } => err(moduleError('placement', message, { section: nameOf(shndx) }));
  const seen = new Set<number>();
  const sections: SectionPlacement[] = [];
  let percpu: PercpuPlacement | undefined;
  for (const p of placed) {
    const name = nameOf(p.shndx);
    if (seen.has(p.shndx)) return bad(p.shndx, `section ${name} is placed more than once`);
    seen.add(p.shndx);
    if (plan.percpu && p.shndx === plan.percpu.shndx) {
      if (p.size !== plan.percpu.size) return bad(p.shndx, `section ${name} is placed with size ${p.size}, the module says ${plan.percpu.size}`);
      if (p.addr < 0n || p.addr >= U64_END || p.addr % BigInt(plan.percpu.align) !== 0n)
        return bad(p.shndx, `per-CPU section ${name} at ${hex(p.addr)} is not aligned to ${plan.percpu.align}`);
      percpu = { shndx: p.shndx, name, addr: p.addr, size: p.size };
      continue;
    }
    const s = plan.byIndex.get(p.shndx);
    if (!s) return bad(p.shndx, `section ${name} (index ${p.shndx}) is not a section the loader places`);
    if (p.size !== s.size) return bad(p.shndx, `section ${name} is placed with size ${p.size}, the module says ${s.size}`);
    if (p.addr % BigInt(s.align) !== 0n) return bad(p.shndx, `section ${name} at ${hex(p.addr)} is not aligned to its sh_addralign ${s.align}`);
    const end = p.addr + BigInt(p.size);
    if (p.addr < area.start || end > area.end)
      return bad(p.shndx, `section ${name} [${hex(p.addr)}, ${hex(end)}) is outside the module area [${hex(area.start)}, ${hex(area.end)})`);
    sections.push({ shndx: s.shndx, name: s.name, part: s.part, group: s.group, addr: p.addr, size: p.size });
  }
  for (const s of plan.loadable) if (!seen.has(s.shndx)) return bad(s.shndx, `section ${s.name} (index ${s.shndx}) is missing from the placement`);
  if (plan.percpu && !percpu) return bad(plan.percpu.shndx, `per-CPU section ${plan.percpu.name} is missing from the placement`);

  const filled = sections.filter((s) => s.size > 0).sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : a.shndx - b.shndx));
  for (let i = 1; i < filled.length; i++) {
    const a = filled[i - 1]!;
    const b = filled[i]!;
    if (b.addr < a.addr + BigInt(a.size))
      return bad(b.shndx, `section ${b.name} at ${hex(b.addr)} overlaps section ${a.name} [${hex(a.addr)}, ${hex(a.addr + BigInt(a.size))})`);
  }
  // Without overlaps, only a section's first and last page can hold another section's bytes.
  const pageOwner = new Map<bigint, SectionPlacement>();
  for (const s of filled) {
    for (const page of [pageDown(s.addr), pageDown(s.addr + BigInt(s.size) - 1n)]) {
      const o = pageOwner.get(page);
      if (o && (o.part !== s.part || o.group !== s.group)) {
        return bad(s.shndx, `page ${hex(page)} holds section ${s.name} (${s.part} ${s.group}) and section ${o.name} (${o.part} ${o.group})`);
      }
      if (!o) pageOwner.set(page, s);
    }
  }
  sections.sort((a, b) => a.shndx - b.shndx);
  return ok({ sections, percpu, groups: groupRanges(filled) });
}

/** Page-aligned ranges of each group: the union of its sections' pages, merged where they touch. */
export function groupRanges(sections: readonly SectionPlacement[]): GroupRange[] {
  const out: GroupRange[] = [];
  const sorted = sections.filter((s) => s.size > 0).sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  for (const s of sorted) {
    const start = pageDown(s.addr);
    const end = pageUp(s.addr + BigInt(s.size));
    const last = out[out.length - 1];
    if (last && last.part === s.part && last.group === s.group && start <= last.end) {
      if (end > last.end) out[out.length - 1] = { ...last, end };
      continue;
    }
    out.push({ part: s.part, group: s.group, start, end, permissions: GROUP_PERMISSIONS[s.group] });
  }
  return out;
}
