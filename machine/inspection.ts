/**
 * What a machine looks like from the host at one moment, as plain data: the kernel image's
 * regions and each loaded module's sections, with the guest-physical frames behind their
 * pages and the EPT permissions of those frames, merged into runs. `heki run --report`
 * draws its map from it (report/).
 *
 * Where the facts come from: the kernel regions' physical placement from the manifest the
 * VMM booted (the core's `kernelRegions`), their split into .rodata, ro_after_init, .data,
 * init and .bss from the image's linker boundaries (System.map); the modules and their
 * section names from the guest's module list, their frames from the guest's page tables
 * (the core's translateForCore). TRUST: after boot the guest's view is attacker-owned; the
 * frames and permissions shown are the host's, the names and addresses the guest's.
 */
import { gpaToGfn, isAddrError, tryGpa, type Gfn } from '../shared/addr.ts';
import type { EptView } from '../hypervisor/ept/ept.ts';
import type { KernelRegion } from '../hypervisor/core/auth/authenticator.ts';
import type { KernelBoundaries } from '../shared/kernel-image/kernel-layout.ts';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import type { Vmm } from '../hypervisor/vmm/vmm.ts';
import type { GuestKernel } from '../guest/kernel/guest-kernel.ts';

const PAGE = 4096n;

/** A run of consecutive pages of one region: consecutive frames, one EPT value. */
export interface InspectedRun {
  /** Virtual address of the run's first page (page-aligned). */
  readonly vaddr: bigint;
  /** Guest-physical address of its first page, or null when the pages are not mapped. */
  readonly gpa: number | null;
  readonly pages: number;
  /** EPT bits (hypervisor/ept/permissions.ts) of every frame of the run; 0 when unmapped. */
  readonly perms: number;
}

/** A kernel region or a module section, with its pages' frames and permissions. */
export interface InspectedRegion {
  readonly name: string;
  /** `manifest`: the VMM knows it from the signed manifest; `system-map`: from the linker boundaries; `module`: a module section. */
  readonly source: 'manifest' | 'system-map' | 'module';
  readonly vaddr: bigint;
  /** Bytes (the region covers the pages of [vaddr, vaddr + size)). */
  readonly size: number;
  /** Its pages, first to last, merged into runs. */
  readonly runs: readonly InspectedRun[];
}

/** A module the guest has loaded. */
export interface InspectedModule {
  readonly name: string;
  /** Whether the core holds a record of it (it granted the module's permissions). */
  readonly verified: boolean;
  /** Its sections with a size, in address order. */
  readonly sections: readonly InspectedRegion[];
}

/** The machine's memory map, as {@link MachineApi.inspect} returns it. */
export interface MachineInspection {
  /** Guest RAM in bytes. */
  readonly memoryBytes: number;
  /** The kernel image's regions, in address order (empty before a kernel is loaded). */
  readonly kernel: readonly InspectedRegion[];
  /** Loaded modules, in load order (empty before boot). */
  readonly modules: readonly InspectedModule[];
}

/** What {@link inspectMachine} reads. */
export interface InspectionSource {
  readonly memoryBytes: number;
  readonly ept: Pick<EptView, 'get'>;
  /** The regions the VMM knows from the manifest (the core's kernelRegions). */
  readonly kernelRegions: readonly KernelRegion[];
  /** The image's linker boundaries, to split the rest of the image (optional). */
  readonly boundaries?: KernelBoundaries;
  /** The guest's loaded modules, with their sections' virtual placement. */
  readonly modules: ReadonlyArray<{
    readonly name: string;
    readonly sections: ReadonlyArray<{ readonly name: string; readonly addr: bigint; readonly size: number }>;
  }>;
  /** Names of the modules the core keeps a record of. */
  readonly verifiedModules: ReadonlySet<string>;
  /** The frame behind a kernel virtual address (the guest's page tables), or undefined. */
  translate(va: bigint): Gfn | undefined;
}

/**
 * Merges per-page facts into runs: a page joins the run before it when its frame follows
 * the run's last frame (or both are unmapped) and its EPT bits are equal.
 */
export function mergeRuns(firstVa: bigint, pages: ReadonlyArray<{ readonly frame: number | undefined; readonly perms: number }>): InspectedRun[] {
  const out: Array<{ vaddr: bigint; gpa: number | null; pages: number; perms: number; last: number | undefined }> = [];
  pages.forEach((p, i) => {
    const prev = out[out.length - 1];
    const follows =
      prev !== undefined && prev.perms === p.perms && (p.frame === undefined ? prev.last === undefined : prev.last !== undefined && p.frame === prev.last + 1);
    if (follows) {
      prev.pages++;
      prev.last = p.frame;
    } else {
      out.push({ vaddr: firstVa + BigInt(i) * PAGE, gpa: p.frame === undefined ? null : p.frame * 4096, pages: 1, perms: p.perms, last: p.frame });
    }
  });
  return out.map(({ vaddr, gpa, pages: n, perms }) => ({ vaddr, gpa, pages: n, perms }));
}

function regionOf(
  name: string,
  source: InspectedRegion['source'],
  vaddr: bigint,
  size: number,
  frameOf: (va: bigint) => Gfn | undefined,
  ept: Pick<EptView, 'get'>,
): InspectedRegion {
  const first = vaddr & ~(PAGE - 1n);
  const end = (vaddr + BigInt(Math.max(size, 1)) + PAGE - 1n) & ~(PAGE - 1n);
  const pages: Array<{ frame: number | undefined; perms: number }> = [];
  for (let va = first; va < end; va += PAGE) {
    const frame = frameOf(va);
    pages.push({ frame, perms: frame === undefined ? 0 : ept.get(frame) });
  }
  return { name, source, vaddr, size, runs: mergeRuns(first, pages) };
}

/**
 * The kernel image's regions: .text, .rodata, ro_after_init, .data, init memory and .bss
 * from the boundaries (ro_after_init carved out of the region holding it, as 6.1 places it
 * inside the read-only data), each placed physically like the manifest's .text; without
 * boundaries, the manifest regions alone.
 */
function kernelRanges(src: InspectionSource): Array<{ name: string; source: InspectedRegion['source']; vaddr: bigint; end: bigint }> {
  const manifest = src.kernelRegions.map((r) => ({ name: r.name, source: 'manifest' as const, vaddr: r.vaddr, end: r.vaddr + BigInt(r.size) }));
  const b = src.boundaries;
  if (!b) return manifest;
  const base = [
    { name: '.text', vaddr: b._stext, end: b._etext },
    { name: '.rodata', vaddr: b.__start_rodata, end: b.__end_rodata },
    { name: '.data', vaddr: b._sdata, end: b._edata },
    { name: 'init (freed after boot)', vaddr: b.__init_begin, end: b.__init_end },
    { name: '.bss', vaddr: b.__bss_start, end: b.__bss_stop },
  ];
  const ro = { name: 'ro_after_init', vaddr: b.__start_ro_after_init, end: b.__end_ro_after_init };
  const out: Array<{ name: string; source: InspectedRegion['source']; vaddr: bigint; end: bigint }> = [];
  const push = (name: string, vaddr: bigint, end: bigint): void => {
    if (end <= vaddr) return;
    // Inside a manifest region: the VMM knows these bytes from the signed manifest.
    const known = manifest.some((r) => vaddr >= r.vaddr && end <= r.end);
    out.push({ name, source: known ? 'manifest' : 'system-map', vaddr, end });
  };
  let roPlaced = false;
  for (const r of base) {
    if (!roPlaced && ro.vaddr >= r.vaddr && ro.end <= r.end && ro.end > ro.vaddr) {
      roPlaced = true;
      push(r.name, r.vaddr, ro.vaddr);
      push(ro.name, ro.vaddr, ro.end);
      push(`${r.name} (rest)`, ro.end, r.end);
    } else {
      push(r.name, r.vaddr, r.end);
    }
  }
  if (!roPlaced) push(ro.name, ro.vaddr, ro.end);
  return out.sort((x, y) => (x.vaddr < y.vaddr ? -1 : x.vaddr > y.vaddr ? 1 : 0));
}

/** Reads the map of a machine (see {@link MachineInspection}). */
export function inspectMachine(src: InspectionSource): MachineInspection {
  // INVARIANT: the kernel image is physically contiguous (loaded from its PT_LOAD segments in
  // order), so one offset places all of it; the manifest's first region gives it.
  const anchor = src.kernelRegions[0];
  const kernelFrame = anchor
    ? (va: bigint): Gfn | undefined => {
        const pa = tryGpa(va + anchor.paddr - anchor.vaddr);
        return isAddrError(pa) ? undefined : gpaToGfn(pa);
      }
    : (va: bigint) => src.translate(va);
  const kernel = kernelRanges(src).map((r) => regionOf(r.name, r.source, r.vaddr, Number(r.end - r.vaddr), kernelFrame, src.ept));
  const modules = src.modules.map((m) => ({
    name: m.name,
    verified: src.verifiedModules.has(m.name),
    sections: [...m.sections]
      .filter((s) => s.size > 0)
      .sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0))
      .map((s) => regionOf(s.name, 'module', s.addr, s.size, (va) => src.translate(va), src.ept)),
  }));
  return { memoryBytes: src.memoryBytes, kernel, modules };
}

/** The map of a simulated machine: its VMM's core, the image it booted, its guest kernel if any. */
export function inspectVm(vmm: Vmm, image: KernelImage, kernel: GuestKernel | undefined): MachineInspection {
  const core = vmm.core;
  const cpu = core.vcpus[0];
  return inspectMachine({
    memoryBytes: Number(core.memory.size),
    ept: core.ept,
    kernelRegions: core.auth?.kernelRegions ?? [],
    boundaries: image.boundaries,
    // A freed init layout is no longer the module's (a later module's core may be there now).
    modules: kernel
      ? [...kernel.modules.loaded.values()].map((m) => ({ name: m.name, sections: m.image.sections.filter((s) => s.part === 'core' || m.init !== undefined) }))
      : [],
    verifiedModules: new Set(core.auth?.modules.keys() ?? []),
    translate: (va) => (kernel && cpu ? cpu.translateForCore(va) : undefined),
  });
}
