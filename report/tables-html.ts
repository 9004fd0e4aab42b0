/**
 * The report's two tables: the denials (each row the target its map pins link to) and the
 * steps (each denied step linked to its pin when it has one, and to its denials).
 */
import type { ScenarioResult } from '../scenario/outcome.ts';
import type { Denial } from './denials.ts';
import { esc } from './escape.ts';
import { hexAddr } from './units.ts';

/** Whether each site of a denial landed on the map (by denial id, one entry per site). */
export type PlacedSites = ReadonlyMap<number, ReadonlyArray<boolean>>;

const SOURCE_WORDS: Record<Denial['source'], string> = {
  verifier: 'verifier verdict',
  'ept-violation': 'EPT-violation exit',
  'heki-denial': 'Heki denial exit',
  step: 'denied step',
};

/** Sites listed before a long list folds. */
const SHOWN_SITES = 3;

function sitesHtml(d: Denial, placed: readonly boolean[]): string {
  if (d.sites.length === 0) return '<span class="note">no address</span>';
  const items = d.sites.map((s, i) => {
    const where = [s.va !== undefined ? `va ${hexAddr(s.va)}` : '', s.gpa !== undefined ? `gpa ${hexAddr(s.gpa)}` : ''].filter(Boolean).join(' · ');
    const pin = placed[i] ? ` <a class="pin" href="#marker-${d.id}">on the map</a>` : ' <span class="note">(not mapped at the end of the run)</span>';
    return `<li><span class="mono">${esc(where || '-')}</span>${s.label ? ` ${esc(s.label)}` : ''}${pin}</li>`;
  });
  if (d.moreSites > 0) items.push(`<li class="note">and ${d.moreSites} more</li>`);
  if (items.length <= SHOWN_SITES + 1) return `<ul class="sites">${items.join('')}</ul>`;
  // A long list (a module's sections, a batch's sites) folds after the first few.
  return `<ul class="sites">${items.slice(0, SHOWN_SITES).join('')}</ul><details><summary>${items.length - SHOWN_SITES} more</summary><ul class="sites">${items.slice(SHOWN_SITES).join('')}</ul></details>`;
}

/** The denials table. */
export function denialsHtml(denials: readonly Denial[], dropped: number, placed: PlacedSites): string {
  if (denials.length === 0) return '<section class="card" id="denials"><h2>Denials</h2><p class="note">Nothing was denied during the run.</p></section>';
  const rows = denials.map(
    (d) =>
      `<tr id="denial-${d.id}" class="denial" data-source="${d.source}"><td class="mono">#${d.id}</td><td>${d.step === null ? '-' : `<a href="#step-${d.step}">step ${d.step}</a>`}</td><td>${esc(SOURCE_WORDS[d.source])}</td><td>${esc(d.title)}</td><td>${sitesHtml(d, placed.get(d.id) ?? [])}</td><td class="reason">${esc(d.reason)}</td></tr>`,
  );
  const more = dropped > 0 ? `<p class="note">${dropped} later denial(s) not shown.</p>` : '';
  return `<section class="card" id="denials"><h2>Denials</h2><p class="note">Verifier verdicts with ok=false, EPT-violation and Heki-denial exits seen on the host, and the steps that were denied, in the order they happened.</p><table><thead><tr><th>#</th><th>step</th><th>source</th><th>what</th><th>where</th><th>reason</th></tr></thead><tbody>${rows.join('')}</tbody></table>${more}</section>`;
}

/** The steps table. */
export function stepsHtml(result: ScenarioResult | undefined, denials: readonly Denial[], placed: PlacedSites): string {
  if (!result) return '<section class="card" id="steps"><h2>Steps</h2><p class="note">The machine did not start: no step ran.</p></section>';
  const rows = result.steps.map((s) => {
    const mine = denials.filter((d) => d.step === s.index);
    // The step's own denial first (its address), then what the host saw during it.
    const ordered = [...mine.filter((d) => d.source === 'step'), ...mine.filter((d) => d.source !== 'step')];
    const pinned = ordered.find((d) => (placed.get(d.id) ?? []).some(Boolean));
    const pin = s.outcome === 'denied' && pinned ? ` <a class="pin step-pin" href="#marker-${pinned.id}">on the map</a>` : '';
    const refs = mine.filter((d) => d.source !== 'step').map((d) => `<a href="#denial-${d.id}">#${d.id} ${esc(d.title)}</a>`);
    const verdict = `${esc(s.reason)}${refs.length ? `<br><span class="note">host: ${refs.join(', ')}</span>` : ''}`;
    return `<tr id="step-${s.index}" class="step ${s.outcome}"><td class="mono">${s.index}</td><td>${esc(s.op)}</td><td>${esc(s.expected ?? '-')}</td><td class="outcome ${s.outcome}">${esc(s.outcome)}${pin}</td><td class="reason">${verdict}</td><td>${s.ok ? '<span class="ok">ok</span>' : '<span class="fail">FAIL</span>'}</td></tr>`;
  });
  return `<section class="card" id="steps"><h2>Steps</h2><table><thead><tr><th>#</th><th>op</th><th>expected</th><th>outcome</th><th>verdict / reason</th><th>ok</th></tr></thead><tbody>${rows.join('')}</tbody></table></section>`;
}
