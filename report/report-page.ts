/**
 * The report as one self-contained HTML page (inline CSS and JS, no external resource, opens
 * from file://): the run's header, the guest-physical map with the denials pinned on it,
 * the denials and the steps. Every text from the run (names, reasons, paths) is escaped.
 */
import type { MachineInspection } from '../machine/inspection.ts';
import type { ScenarioResult } from '../scenario/outcome.ts';
import type { Denial } from './denials.ts';
import { esc, rawText } from './escape.ts';
import { mapHtml, type MapMarker } from './map-html.ts';
import { mapRegions, placeSite, type MapRegion } from './map-placement.ts';
import { REPORT_CSS, REPORT_JS } from './style.ts';
import { denialsHtml, stepsHtml } from './tables-html.ts';

/** What a report is made of. */
export interface ReportInput {
  /** The scenario's name. */
  readonly scenario: string;
  /** The scenario file as the user named it. */
  readonly file: string;
  /** The run's result, or undefined when the machine did not start. */
  readonly result: ScenarioResult | undefined;
  /** The machine's map after the last step, or undefined when the machine has none. */
  readonly inspection: MachineInspection | undefined;
  readonly denials: readonly Denial[];
  /** Denials beyond the kept ones. */
  readonly droppedDenials: number;
  /** When the report was made (shown as given). */
  readonly generated: string;
}

/** The page and what it shows, for the one-line summary. */
export interface RenderedReport {
  readonly html: string;
  /** Kernel regions plus module sections drawn. */
  readonly regions: number;
  readonly denials: number;
  /** Denials with at least one pin on the map. */
  readonly pinned: number;
}

/** Places every denial's sites and groups them into one pin per (region, page). */
export function placeDenials(regions: readonly MapRegion[], denials: readonly Denial[]): { markers: MapMarker[]; placed: Map<number, boolean[]> } {
  const groups = new Map<string, { key: string; page: number; fraction: number; ids: number[]; anchors: number[]; info: string[] }>();
  const placed = new Map<number, boolean[]>();
  for (const d of denials) {
    const flags: boolean[] = [];
    let anchored = false;
    for (const site of d.sites) {
      const p = placeSite(regions, site);
      flags.push(p !== undefined);
      if (!p) continue;
      const id = `${p.key}:${p.page}`;
      let g = groups.get(id);
      if (!g) {
        g = { key: p.key, page: p.page, fraction: p.fraction, ids: [], anchors: [], info: [] };
        groups.set(id, g);
      }
      if (!g.ids.includes(d.id)) {
        g.ids.push(d.id);
        g.info.push(`#${d.id} ${d.title}: ${d.reason}`);
      }
      if (!anchored) {
        anchored = true;
        g.anchors.push(d.id);
      }
    }
    placed.set(d.id, flags);
  }
  const markers = [...groups.values()].map((g) => ({
    key: g.key,
    page: g.page,
    fraction: g.fraction,
    ids: g.ids,
    anchors: g.anchors,
    info: g.info.join('\n'),
  }));
  return { markers, placed };
}

/** Renders the page. */
export function renderReport(input: ReportInput): RenderedReport {
  const regions = input.inspection ? mapRegions(input.inspection) : [];
  const { markers, placed } = placeDenials(regions, input.denials);
  const r = input.result;
  const status =
    r === undefined
      ? '<span class="badge fail">machine did not start</span>'
      : r.passed
        ? '<span class="badge pass">PASSED</span>'
        : '<span class="badge fail">FAILED</span>';
  const steps = r ? `${r.steps.length} step${r.steps.length === 1 ? '' : 's'}, ${r.steps.filter((s) => s.outcome === 'denied').length} denied` : 'no steps ran';
  const map = input.inspection
    ? mapHtml(input.inspection, regions, markers)
    : '<section class="card" id="map"><h2>Guest-physical map</h2><p class="note">This machine offers no inspection: no map.</p></section>';
  const pinned = [...placed.values()].filter((f) => f.some(Boolean)).length;
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>heki run report: ${esc(input.scenario)}</title>
<style>${rawText(REPORT_CSS)}</style>
</head>
<body>
<header><h1>heki run: ${esc(input.scenario)}${status}</h1>
<div class="sub"><span class="mono">${esc(input.file)}</span> · ${esc(steps)} · <a href="#denials">${input.denials.length + input.droppedDenials} denial(s)</a>, ${pinned} on the map · ${esc(input.generated)}</div></header>
<main>
${map}
${denialsHtml(input.denials, input.droppedDenials, placed)}
${stepsHtml(r, input.denials, placed)}
</main>
<div id="detail" hidden><button class="x" type="button" aria-label="close">×</button><div id="detail-body"></div></div>
<script>${rawText(REPORT_JS)}</script>
</body>
</html>
`;
  return { html, regions: regions.length, denials: input.denials.length + input.droppedDenials, pinned };
}
