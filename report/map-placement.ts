/**
 * Where an address falls on the report's map: which region (a kernel region or a module
 * section), which page of it, and how far along its bar. A virtual address is placed in the
 * region whose pages cover it; a guest-physical one in the run whose frames hold it.
 */
import type { InspectedRegion, MachineInspection } from '../machine/inspection.ts';
import type { DenialSite } from './denials.ts';

/** A region of the map with its key (`k3`: kernel region 3, `m1s4`: module 1 section 4). */
export interface MapRegion {
  readonly key: string;
  /** `kernel` or the module's name. */
  readonly owner: string;
  readonly region: InspectedRegion;
  /** Pages of the region (the sum of its runs). */
  readonly pages: number;
}

/** A site placed on a region's bar. */
export interface Placement {
  readonly key: string;
  /** Index of the page within the region. */
  readonly page: number;
  /** Position along the bar, 0..1 (the middle of the page). */
  readonly fraction: number;
  /** The guest-physical address, when known (from the site or from the run). */
  readonly gpa: number | undefined;
}

const PAGE = 4096n;

/** Every region of the map, kernel first, then the modules' sections. */
export function mapRegions(ins: MachineInspection): MapRegion[] {
  const pagesOf = (r: InspectedRegion): number => r.runs.reduce((a, x) => a + x.pages, 0);
  return [
    ...ins.kernel.map((r, i) => ({ key: `k${i}`, owner: 'kernel', region: r, pages: pagesOf(r) })),
    ...ins.modules.flatMap((m, mi) => m.sections.map((r, si) => ({ key: `m${mi}s${si}`, owner: m.name, region: r, pages: pagesOf(r) }))),
  ];
}

/** Places a virtual address: the first region (kernel before modules) whose pages hold it. */
function placeVa(regions: readonly MapRegion[], va: bigint): Placement | undefined {
  for (const m of regions) {
    const first = m.region.vaddr & ~(PAGE - 1n);
    const end = first + BigInt(m.pages) * PAGE;
    if (va < first || va >= end) continue;
    const page = Number((va - first) / PAGE);
    let at = 0;
    for (const run of m.region.runs) {
      if (page < at + run.pages) {
        const gpa = run.gpa === null ? undefined : run.gpa + (page - at) * 4096 + Number(va & (PAGE - 1n));
        return { key: m.key, page, fraction: (page + 0.5) / m.pages, gpa };
      }
      at += run.pages;
    }
  }
  return undefined;
}

/** Places a guest-physical address: the first run that holds its frame. */
function placeGpa(regions: readonly MapRegion[], gpa: number): Placement | undefined {
  for (const m of regions) {
    let at = 0;
    for (const run of m.region.runs) {
      if (run.gpa !== null && gpa >= run.gpa && gpa < run.gpa + run.pages * 4096) {
        const page = at + Math.floor((gpa - run.gpa) / 4096);
        return { key: m.key, page, fraction: (page + 0.5) / m.pages, gpa };
      }
      at += run.pages;
    }
  }
  return undefined;
}

/** Where a denial's site goes on the map: by its guest-physical address first, else its virtual one. */
export function placeSite(regions: readonly MapRegion[], site: DenialSite): Placement | undefined {
  if (site.gpa !== undefined) {
    const p = placeGpa(regions, site.gpa);
    if (p) return p;
  }
  return site.va !== undefined ? placeVa(regions, site.va) : undefined;
}
