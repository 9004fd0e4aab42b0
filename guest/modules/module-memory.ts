/**
 * Module memory for a load (module_alloc() in kernel/module/main.c's move_module()): the core
 * and init layouts where the loader chooses, or where a caller says
 * ({@link ModulePlacement}), with the sections' addresses in them.
 */
import { layoutModule, type PlacedSectionRef } from '../../shared/module/index.ts';
import type { Elf64 } from '../../shared/elf/elf64.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { PROT, type KernelMm } from '../mm/kernel-mm.ts';
import { failed, fromMm, type GuestOpError } from '../heki/refusal.ts';

/** Where the probe layout starts its init part (far from its core part, which starts at 0). */
const PROBE_INIT = 1n << 40n;

/**
 * Where a module goes when the caller chooses (`heki reference check` puts each module where
 * the real kernel's module_alloc put it, from `/sys/module/<name>/sections`).
 *
 * Core sections go exactly at their addresses: every non-empty core section must have one.
 * The init sections go at theirs too when all of them have one and that memory (with the
 * guard page vmalloc leaves after it) is free; otherwise the init layout goes where
 * module_alloc() would put it. The loader frees a module's init layout once its init
 * returned, as do_init_module() does, so a later module's core may take that memory, as in
 * the real boot.
 */
export interface ModulePlacement {
  /** Section addresses by section name. */
  readonly sections: ReadonlyMap<string, bigint>;
  /** The per-CPU pointer of the module's `.data..percpu` (what pcpu_alloc() returned), when the caller chooses it. */
  readonly percpu?: bigint;
}

/** Module memory allocated for a load, and the placement chosen in it. */
export interface ModuleMemory {
  readonly core: { va: bigint; pages: number };
  readonly init: { va: bigint; pages: number } | undefined;
  readonly initBase: bigint;
  /** The sections' addresses when a {@link ModulePlacement} chose them. */
  readonly placed: readonly PlacedSectionRef[] | undefined;
}

/**
 * Measures the layout and allocates its module memory: core and init where the loader
 * chooses, or where `placement` says ({@link ModulePlacement}).
 */
export async function allocateModuleMemory(
  mm: KernelMm,
  elf: Elf64,
  name: string,
  percpuBase: bigint,
  placement: ModulePlacement | undefined,
): Promise<Result<ModuleMemory, GuestOpError>> {
  // The probe's addresses are offsets from 0 (core) and PROBE_INIT (init).
  const probe = layoutModule(elf, { base: 0n, initBase: PROBE_INIT, percpuBase });
  if (!probe.ok) return err(failed(`${name}: ${probe.error.message}`));
  const pagesOf = (part: 'core' | 'init', base: bigint): number => {
    const g = probe.value.groups.filter((x) => x.part === part);
    return g.length ? Number((g[g.length - 1]!.end - base) / 4096n) : 0;
  };
  if (!placement) {
    const corePages = Math.max(pagesOf('core', 0n), 1);
    const initPages = pagesOf('init', PROBE_INIT);
    const core = await mm.vmalloc(corePages, PROT.RW, 'modules');
    if (!core.ok) return err(fromMm(core, `${name}: `));
    const init = initPages > 0 ? await mm.vmalloc(initPages, PROT.RW, 'modules') : undefined;
    if (init && !init.ok) {
      await mm.vfree(core.value.va, corePages, 'modules');
      return err(fromMm(init, `${name}: `));
    }
    const initBase = init ? init.value.va : core.value.va + BigInt(corePages) * 4096n;
    return ok({ core: { va: core.value.va, pages: corePages }, init: init && { va: init.value.va, pages: initPages }, initBase, placed: undefined });
  }
  const at = placement.sections;
  const secs = probe.value.sections;
  const span = (part: 'core' | 'init'): { start: bigint; end: bigint } | undefined => {
    let start: bigint | undefined;
    let end = 0n;
    for (const s of secs) {
      const a = at.get(s.name);
      if (s.part !== part || s.size === 0 || a === undefined) continue;
      if (start === undefined || a < start) start = a;
      if (a + BigInt(s.size) > end) end = a + BigInt(s.size);
    }
    return start === undefined ? undefined : { start: start & ~0xfffn, end: (end + 0xfffn) & ~0xfffn };
  };
  const missing = secs.find((s) => s.part === 'core' && s.size > 0 && !at.has(s.name));
  if (missing) return err(failed(`${name}: the placement gives no address for core section ${missing.name}`));
  const coreSpan = span('core');
  if (!coreSpan) return err(failed(`${name}: the placement gives no address for any core section`));
  const corePages = Number((coreSpan.end - coreSpan.start) / 4096n);
  const core = await mm.vmalloc(corePages, PROT.RW, 'modules', { at: coreSpan.start });
  if (!core.ok) return err(fromMm(core, `${name}: `));
  const initSecs = secs.filter((s) => s.part === 'init' && s.size > 0);
  let initSpan = initSecs.every((s) => at.has(s.name)) ? span('init') : undefined;
  let init: { va: bigint; pages: number } | undefined;
  if (initSpan) {
    const pages = Number((initSpan.end - initSpan.start) / 4096n);
    const r = await mm.vmalloc(pages, PROT.RW, 'modules', { at: initSpan.start });
    if (r.ok) init = { va: r.value.va, pages };
    else initSpan = undefined;
  } else initSpan = undefined;
  const initPages = pagesOf('init', PROBE_INIT);
  if (!init && initPages > 0) {
    const r = await mm.vmalloc(initPages, PROT.RW, 'modules');
    if (!r.ok) {
      await mm.vfree(core.value.va, corePages, 'modules');
      return err(fromMm(r, `${name}: `));
    }
    init = { va: r.value.va, pages: initPages };
  }
  const initBase = init?.va ?? coreSpan.end;
  // Empty sections, and init sections moved elsewhere, keep the loader's own offsets.
  const placed: PlacedSectionRef[] = secs.map((s) => {
    const given = at.get(s.name);
    if (s.part === 'core') return { shndx: s.shndx, addr: s.size > 0 ? given! : coreSpan.start + s.addr, size: s.size };
    return { shndx: s.shndx, addr: initSpan && s.size > 0 ? given! : initBase + (s.addr - PROBE_INIT), size: s.size };
  });
  if (probe.value.percpu) placed.push({ shndx: probe.value.percpu.shndx, addr: percpuBase, size: probe.value.percpu.size });
  return ok({ core: { va: core.value.va, pages: corePages }, init, initBase, placed });
}
