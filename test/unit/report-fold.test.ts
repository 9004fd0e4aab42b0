/**
 * Issue 15, class 11: the report's list of denials started six screens down, below one row
 * per module section. The header's denial count now links to the list, and a module's
 * sections with the same bar and no denial fold into one row that opens to list them; a
 * section with a denial pinned on it is never folded away.
 */
import test from 'ava';
import { renderReport, type Denial } from '../../report/index.ts';
import type { InspectedRegion, MachineInspection } from '../../machine/inspection.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_XS } from '../../hypervisor/ept/permissions.ts';

const M = 0xffffffffc0000000n;
const section = (i: number, name: string, pages: number, perms: number): InspectedRegion => ({
  name,
  source: 'module',
  vaddr: M + BigInt(i) * 0x10000n,
  size: pages * 4096,
  runs: [{ vaddr: M + BigInt(i) * 0x10000n, gpa: 0x5000000 + i * 0x10000, pages, perms }],
});

const inspection: MachineInspection = {
  memoryBytes: 1 << 30,
  kernel: [],
  modules: [
    {
      name: 'virtio_net',
      verified: true,
      sections: [
        section(0, '.text', 4, EPT_R | EPT_XS | EPT_IMMUTABLE),
        section(1, '.rodata', 2, EPT_R | EPT_IMMUTABLE),
        section(2, '__ksymtab', 1, EPT_R | EPT_IMMUTABLE),
        section(3, '__ksymtab_strings', 1, EPT_R | EPT_IMMUTABLE),
        section(4, '.rodata.str1.1', 3, EPT_R | EPT_IMMUTABLE),
        section(5, '__param', 1, EPT_R | EPT_IMMUTABLE),
      ],
    },
  ],
};

const denial: Denial = {
  id: 1,
  source: 'ept-violation',
  step: null,
  title: 'EPT violation: write (kernel)',
  reason: 'read-only',
  sites: [{ va: M + 0x30010n }],
  moreSites: 0,
};

function page(denials: Denial[]): string {
  return renderReport({ scenario: 's', file: 's.yaml', result: undefined, inspection, denials, droppedDenials: 0, generated: 'now' }).html;
}

test("the header's denial count links to the denials' table", (t) => {
  const html = page([denial]);
  t.regex(html, /<a href="#denials">1 denial\(s\)<\/a>/);
  t.regex(html, /<section class="card" id="denials">/);
});

test('sections with the same bar fold into one row; the one with a denial on it stays its own row', (t) => {
  const html = page([denial]);
  // .rodata, __ksymtab, .rodata.str1.1 and __param: one read-only immutable run each (a
  // 2-page and a 1-page bar look the same to scale); __ksymtab_strings carries the pin.
  const folded = [...html.matchAll(/data-folded="(\d+)"><details><summary>([^<]*)<\/summary>/g)].map((m) => [m[1], m[2]]);
  t.deepEqual(folded, [['4', '.rodata and 3 more alike']]);
  t.regex(html, /<div class="cell name" title="__ksymtab_strings at va/);
  t.regex(html, /<a class="marker" href="#denial-1"/);
  t.regex(html, /<div class="cell name" title="\.text at va/);
  for (const name of ['__ksymtab', '.rodata.str1.1', '__param']) t.true(html.includes(`<span class="mono">${name}</span>`), `${name} listed in the fold`);
  t.regex(html, /6 sections, 12 pages; sections with the same bar folded into one row/);
  const none = page([]);
  t.deepEqual(
    [...none.matchAll(/data-folded="(\d+)"/g)].map((m) => m[1]),
    ['5'],
    'without the pin all five read-only sections fold',
  );
});
