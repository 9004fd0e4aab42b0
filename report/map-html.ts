/**
 * The map part of the report: the legend, an overview of guest RAM, and one row per kernel
 * region and per module section, each a bar of its pages to scale within the region, runs
 * coloured by EPT value, with the denials' markers at the pages they concern.
 *
 * A module has dozens of small sections whose bars look alike (one read-only run, one
 * read-execute run): those of one module with the same bar and no denial on them are folded
 * into one row that opens to list them, so the map stays a screen or two and the denials'
 * table is reached without scrolling past a hundred identical rows.
 */
import type { InspectedRun, MachineInspection } from '../machine/inspection.ts';
import { esc } from './escape.ts';
import type { MapRegion } from './map-placement.ts';
import { PERM_CLASSES, PERM_LEGEND, permClass, permClasses, permWords } from './perm-class.ts';
import { hexAddr, sizeText } from './units.ts';

/** A marker to draw: the denials that concern one page of one region. */
export interface MapMarker {
  readonly key: string;
  readonly page: number;
  readonly fraction: number;
  /** The denials' ids, in order; the pin links to the first. */
  readonly ids: readonly number[];
  /** The denials whose first place on the map this is: the pin carries their `marker-<id>` anchors. */
  readonly anchors: readonly number[];
  readonly info: string;
}

/** Regions up to this many pages show a tick per page. */
const TICK_PAGES = 96;

function runInfo(owner: string, regionName: string, run: InspectedRun): string {
  const bytes = run.pages * 4096;
  return [
    `${owner} ${regionName}`,
    permWords(run.perms, run.gpa !== null),
    `${run.pages} page${run.pages === 1 ? '' : 's'} (${sizeText(bytes)})`,
    run.gpa === null ? 'gpa: -' : `gpa ${hexAddr(run.gpa)} - ${hexAddr(run.gpa + bytes - 1)}`,
    `va  ${hexAddr(run.vaddr)} - ${hexAddr(run.vaddr + BigInt(bytes) - 1n)}`,
  ].join('\n');
}

function bar(m: MapRegion, markers: readonly MapMarker[]): string {
  const runs = m.region.runs
    .map((run) => {
      const info = runInfo(m.owner, m.region.name, run);
      return `<span class="${permClasses(run.perms, run.gpa !== null)}" style="flex-grow:${run.pages}" data-perm="${permClass(run.perms, run.gpa !== null)}" data-pages="${run.pages}" title="${esc(info)}" data-info="${esc(info)}"></span>`;
    })
    .join('');
  const ticks = m.pages > 1 && m.pages <= TICK_PAGES ? `<div class="ticks" style="--n:${m.pages}"></div>` : '';
  const pins = markers
    .map((k) => {
      const first = k.ids[0]!;
      const anchors = k.anchors.map((id) => `<i id="marker-${id}"></i>`).join('');
      const label = k.ids.length > 2 ? `${first}+${k.ids.length - 1}` : k.ids.join(',');
      return `<a class="marker" href="#denial-${first}" style="left:${(k.fraction * 100).toFixed(3)}%" title="${esc(k.info)}" data-denials="${k.ids.join(' ')}"><span>${esc(label)}</span>${anchors}</a>`;
    })
    .join('');
  return `<div class="bar" id="region-${m.key}" data-region="${esc(m.region.name)}" data-owner="${esc(m.owner)}">${runs}${ticks}${pins}</div>`;
}

function rowOf(m: MapRegion, markers: readonly MapMarker[]): string {
  const r = m.region;
  const first = r.runs[0];
  const mapped = r.runs.filter((x) => x.gpa !== null);
  const lo = mapped.length ? Math.min(...mapped.map((x) => x.gpa!)) : undefined;
  const hi = mapped.length ? Math.max(...mapped.map((x) => x.gpa! + x.pages * 4096)) : undefined;
  const contiguous = mapped.length > 0 && mapped.every((x, i) => i === 0 || x.gpa === mapped[i - 1]!.gpa! + mapped[i - 1]!.pages * 4096);
  const gpa = lo === undefined ? 'not mapped' : `${hexAddr(lo)} - ${hexAddr(hi! - 1)}${contiguous ? '' : ' (scattered)'}`;
  const src = r.source === 'manifest' ? 'manifest' : r.source === 'system-map' ? 'System.map' : '';
  return [
    `<div class="cell name" title="${esc(`${r.name} at va ${hexAddr(r.vaddr)}, ${r.size} bytes`)}">${esc(r.name)}${src ? `<small>${esc(src)}</small>` : ''}</div>`,
    `<div class="cell mono" title="va ${esc(first ? hexAddr(first.vaddr) : '-')}">${esc(gpa)}</div>`,
    `<div class="cell">${esc(sizeText(r.size))} · ${m.pages} pg</div>`,
    `<div class="cell">${bar(m, markers)}</div>`,
  ].join('');
}

/**
 * What a bar looks like: its runs' colour classes with their share of the bar (a bar is to
 * scale within its region, so one 1-page and one 9-page read-only section look the same).
 */
function barLook(m: MapRegion): string {
  return m.region.runs.map((run) => `${permClasses(run.perms, run.gpa !== null)}@${(run.pages / Math.max(m.pages, 1)).toFixed(3)}`).join('|');
}

/** Rows in order, sections with the same look and no markers gathered at the first one's place. */
function foldAlike(list: readonly MapRegion[], byKey: ReadonlyMap<string, readonly MapMarker[]>): MapRegion[][] {
  const groups: MapRegion[][] = [];
  const byLook = new Map<string, MapRegion[]>();
  for (const m of list) {
    if ((byKey.get(m.key) ?? []).length > 0) {
      groups.push([m]);
      continue;
    }
    const look = barLook(m);
    const g = byLook.get(look);
    if (g) g.push(m);
    else {
      const fresh = [m];
      byLook.set(look, fresh);
      groups.push(fresh);
    }
  }
  return groups;
}

/** One row standing for `group` (two or more sections with the same bar and no denial). */
function foldedRowOf(group: readonly MapRegion[]): string {
  const first = group[0]!;
  const size = group.reduce((a, m) => a + m.region.size, 0);
  const pages = group.reduce((a, m) => a + m.pages, 0);
  const names = group
    .map((m) => `<div><span class="mono">${esc(m.region.name)}</span> · ${esc(sizeText(m.region.size))} · va ${esc(hexAddr(m.region.vaddr))}</div>`)
    .join('');
  return [
    `<div class="cell name" data-folded="${group.length}"><details><summary>${esc(first.region.name)} and ${group.length - 1} more alike</summary>${names}</details></div>`,
    `<div class="cell mono">${group.length} sections</div>`,
    `<div class="cell">${esc(sizeText(size))} · ${pages} pg</div>`,
    `<div class="cell">${bar(first, [])}</div>`,
  ].join('');
}

const HEAD =
  '<div class="h">region</div><div class="h">guest-physical</div><div class="h">size</div><div class="h">pages to scale within the region, coloured by EPT permission</div>';

/** The legend of colours and marks. */
export function legendHtml(): string {
  const items = PERM_CLASSES.map((c) => `<span class="item"><span class="sw perm-${c}"></span>${esc(PERM_LEGEND[c])}</span>`);
  items.push('<span class="item"><span class="sw perm-rx imm"></span>hatched: IMMUTABLE (no later change until reset)</span>');
  items.push('<span class="item"><span class="sw perm-r frozen"></span>dashed: FROZEN (verification in flight)</span>');
  items.push('<span class="item"><span class="sw" style="background:none;border-left:2px solid #b3261e"></span>numbered pin: a denial at that page</span>');
  return `<div class="legend">${items.join('')}</div>`;
}

/** A strip of all guest RAM with the mapped regions at their frames, to scale. */
function overview(ins: MachineInspection, regions: readonly MapRegion[]): string {
  const mem = ins.memoryBytes;
  const spans = regions.flatMap((m) =>
    m.region.runs
      .filter((r) => r.gpa !== null)
      .map(
        (r) =>
          `<div class="ov ${permClasses(r.perms).replace('run ', '')}" style="left:${((r.gpa! / mem) * 100).toFixed(4)}%;width:${((r.pages * 4096 * 100) / mem).toFixed(4)}%" title="${esc(`${m.owner} ${m.region.name}: gpa ${hexAddr(r.gpa!)}`)}"></div>`,
      ),
  );
  return `<div class="overview">${spans.join('')}</div><div class="axis"><span>0</span><span>${esc(sizeText(mem / 4))}</span><span>${esc(sizeText(mem / 2))}</span><span>${esc(sizeText((mem * 3) / 4))}</span><span>${esc(sizeText(mem))}</span></div>`;
}

/** The whole map section. */
export function mapHtml(ins: MachineInspection, regions: readonly MapRegion[], markers: readonly MapMarker[]): string {
  const byKey = new Map<string, MapMarker[]>();
  for (const k of markers) byKey.set(k.key, [...(byKey.get(k.key) ?? []), k]);
  const rows = (list: readonly MapRegion[]): string => `<div class="map">${HEAD}${list.map((m) => rowOf(m, byKey.get(m.key) ?? [])).join('')}</div>`;
  const kernel = regions.filter((m) => m.key.startsWith('k'));
  const modules = ins.modules
    .map((mod, mi) => {
      const list = regions.filter((m) => m.key.startsWith(`m${mi}s`));
      const pages = list.reduce((a, m) => a + m.pages, 0);
      const badge = mod.verified ? '<span class="badge verified">verified by the core</span>' : '<span class="badge unverified">no core record</span>';
      const groups = foldAlike(list, byKey);
      const body = groups.map((g) => (g.length === 1 ? rowOf(g[0]!, byKey.get(g[0]!.key) ?? []) : foldedRowOf(g))).join('');
      const folded = list.length - groups.length;
      const note = `${list.length} sections, ${pages} pages${folded > 0 ? `; sections with the same bar folded into one row (open it for the list)` : ''}`;
      return `<div class="module-head" id="module-${esc(mod.name)}">module ${esc(mod.name)}${badge}<span class="note">&nbsp;${note}</span></div>${list.length ? `<div class="map">${HEAD}${body}</div>` : '<p class="note">no sections with a size</p>'}`;
    })
    .join('');
  return [
    '<section class="card" id="map"><h2>Guest-physical map</h2>',
    `<p class="note">Guest RAM: ${esc(sizeText(ins.memoryBytes))}; where the kernel image and the modules sit in it (to scale):</p>`,
    overview(ins, regions),
    '<h3>Legend</h3>',
    legendHtml(),
    '<h3>Kernel image</h3>',
    '<p class="note">Placed as the VMM knows it from the signed manifest; the split into .rodata, ro_after_init, .data, init and .bss from the linker boundaries. Click a run for its details.</p>',
    kernel.length ? rows(kernel) : '<p class="note">no kernel loaded</p>',
    '<h3>Loaded modules</h3>',
    ins.modules.length ? modules : '<p class="note">no module loaded at the end of the run</p>',
    '</section>',
  ].join('\n');
}
