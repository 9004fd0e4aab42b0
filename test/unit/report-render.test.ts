/**
 * The report page (report/): everything from the run is escaped (a scenario name,
 * a reason, a section name cannot inject markup or end the script), runs become coloured
 * segments to scale with the immutable hatching, denials are pinned at the page they
 * concern and linked both ways, and the collector turns observer events into denials.
 */
import test from 'ava';
import { DenialCollector, renderReport, type Denial } from '../../report/index.ts';
import { esc, rawText } from '../../report/escape.ts';
import { permClass } from '../../report/perm-class.ts';
import type { MachineInspection } from '../../machine/inspection.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import type { VerdictEvent, VerifierRequestEvent } from '../../hypervisor/observe/vm-observer.ts';
import type { OutgoingRequest } from '../../hypervisor/verifier-link/verifier-link.ts';

const RX = EPT_R | EPT_XS;
const K = 0xffffffff81000000n;

const inspection: MachineInspection = {
  memoryBytes: 1 << 30,
  kernel: [
    {
      name: '.text',
      source: 'manifest',
      vaddr: K,
      size: 4 * 4096,
      runs: [
        { vaddr: K, gpa: 0x1000000, pages: 3, perms: RX | EPT_IMMUTABLE },
        { vaddr: K + 0x3000n, gpa: 0x1003000, pages: 1, perms: RX },
      ],
    },
  ],
  modules: [
    {
      name: 'evil<b>mod',
      verified: true,
      sections: [
        {
          name: '.data"><script>x()</script>',
          source: 'module',
          vaddr: 0xffffffffc0000000n,
          size: 100,
          runs: [{ vaddr: 0xffffffffc0000000n, gpa: 0x5000000, pages: 1, perms: EPT_R | EPT_W }],
        },
      ],
    },
  ],
};

const denial = (id: number, over: Partial<Denial>): Denial => ({
  id,
  source: 'step',
  step: 2,
  title: `step 2 write`,
  reason: 'stopped',
  sites: [],
  moreSites: 0,
  ...over,
});

function render(denials: Denial[], name = 'demo'): string {
  return renderReport({
    scenario: name,
    file: 'x.yaml',
    result: {
      name,
      passed: true,
      steps: [
        { index: 1, op: 'boot', outcome: 'allowed', reason: 'booted', expected: null, ok: true },
        { index: 2, op: 'write', outcome: 'denied', reason: '#PF <at> "text" & more', expected: 'denied', ok: true },
      ],
    },
    inspection,
    denials,
    droppedDenials: 0,
    generated: 'now',
  }).html;
}

test('esc replaces the five HTML metacharacters; rawText keeps </ out of scripts', (t) => {
  t.is(esc(`<a href="x">'&'</a>`), '&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;');
  t.is(rawText('a</script>b'), 'a<\\/script>b');
});

test('names, reasons and titles from the run are escaped: no markup gets through', (t) => {
  const html = render([denial(1, { reason: '<img src=x onerror=alert(1)>', title: 'step 2 <write>' })], '<script>alert(1)</script>');
  t.false(html.includes('<script>alert(1)'));
  t.false(html.includes('<img src=x'));
  t.false(html.includes('<script>x()'));
  t.false(html.includes('evil<b>mod'));
  t.true(html.includes('&lt;script&gt;alert(1)&lt;/script&gt;'));
  t.true(html.includes('&lt;img src=x onerror=alert(1)&gt;'));
  t.true(html.includes('#PF &lt;at&gt; &quot;text&quot; &amp; more'));
  // One script element: the report's own.
  t.is(html.split('<script>').length, 2);
});

test('the page is self-contained: no external URL, stylesheet or script source', (t) => {
  const html = render([]);
  t.notRegex(html, /<link|src=|https?:\/\//);
});

test('each run is a segment to scale with its colour class; IMMUTABLE runs are hatched', (t) => {
  const html = render([]);
  t.regex(html, /class="run perm-rx imm" style="flex-grow:3" data-perm="rx" data-pages="3"/);
  t.regex(html, /class="run perm-rx" style="flex-grow:1" data-perm="rx" data-pages="1"/);
  t.regex(html, /class="run perm-rw" style="flex-grow:1"/);
  t.is(permClass(EPT_R), 'r');
  t.is(permClass(EPT_R | EPT_W | EPT_XS), 'rwx');
  t.is(permClass(0), 'none');
  t.is(permClass(RX, false), 'unmapped');
});

test('a denial is pinned at its page and linked both ways with its reason row and its step', (t) => {
  const html = render([
    denial(1, { sites: [{ va: K + 0x3010n, label: '_stext+0x3010' }] }),
    denial(2, { source: 'ept-violation', title: 'EPT violation: write (kernel)', sites: [{ gpa: 0x5000010 }] }),
    denial(3, { source: 'verifier', title: 'verifier: module-load m', sites: [{ va: 0xffffffffc0fff000n }] }),
  ]);
  // Pin 1 on .text's fourth page (fraction 3.5 / 4), linking to the reason row.
  t.regex(html, /<a class="marker" href="#denial-1" style="left:87\.500%"[^>]*><span>1<\/span><i id="marker-1"><\/i><\/a>/);
  t.regex(html, /<a class="marker" href="#denial-2" style="left:50\.000%"/);
  t.regex(html, /<tr id="denial-1" class="denial" data-source="step">/);
  t.regex(html, /<tr id="denial-3"[\s\S]*not mapped at the end of the run/);
  t.false(html.includes('href="#denial-3" style'));
  // The denied step links to its pin; its host-side denials are listed with it.
  t.regex(html, /<tr id="step-2" class="step denied">[\s\S]*?<a class="pin step-pin" href="#marker-1">/);
});

test('the collector keeps denied verdicts with their sites, EPT violations with the gpa, and denied steps resolved', (t) => {
  const c = new DenialCollector();
  const o = c.observer;
  const req = (seq: number, r: OutgoingRequest): VerifierRequestEvent => ({ seq, vm: 'vm0', kind: r.kind, items: 1, request: () => r, time: 0 });
  const verdict = (seq: number, kind: OutgoingRequest['kind'], ok: boolean, reason: string, items?: VerdictEvent['verdict']['items']): VerdictEvent => ({
    seq,
    vm: 'vm0',
    kind,
    verdict: { v: 1, id: seq, ok, reason, plugins: ['p'], ...(items ? { items } : {}) },
    start: 0,
    end: 1,
  });
  c.stepStarted(3);
  o.verifierRequest!(req(0, { kind: 'module-unload', vm: 'vm0', name: 'ok' }));
  o.verdict!(verdict(0, 'module-unload', true, 'fine'));
  const ranges = [
    { addr: 0xffffffff82a1a000n, frames: [0x2a1a], current: [3], requested: 5, pageHashes: ['a'] },
    { addr: 0xffffffff82a1b000n, frames: [0x2a1b], current: [3], requested: 5, pageHashes: ['b'] },
  ];
  o.verifierRequest!(req(1, { kind: 'set-memory', vm: 'vm0', ranges }));
  o.verdict!(
    verdict(1, 'set-memory', false, 'W^X', [
      { ok: true, reason: '' },
      { ok: false, reason: 'data page made executable' },
    ]),
  );
  o.exit!({
    vcpu: 0,
    exit: { reason: 'ept-violation', vcpu: 0, gpa: 0x1000010n, gva: K + 0x10n, access: 'write', mode: 'kernel', perms: RX, pageWalk: false },
    action: 'inject',
    time: 0,
  });
  c.stepFinished(3, 'set-memory', { outcome: 'denied', reason: 'refused' }, 'init_task');
  c.stepStarted(4);
  c.stepFinished(4, 'read', { outcome: 'allowed', reason: 'read' }, 'jiffies');
  c.resolveSteps((a) => (a === 'init_task' ? { ok: true, value: 0xffffffff82a1aa40n } : { ok: false, error: 'unknown' }));
  const d = c.denials;
  t.is(d.length, 3);
  t.like(d[0], { id: 1, source: 'verifier', step: 3, title: 'verifier: set-memory', reason: 'W^X' });
  // Only the denied range, with its frame and its own reason.
  t.deepEqual(d[0]!.sites, [{ va: 0xffffffff82a1b000n, gpa: 0x2a1b000, label: 'range 2 page 1: data page made executable' }]);
  t.like(d[1], { source: 'ept-violation', step: 3, sites: [{ gpa: 0x1000010, va: K + 0x10n, label: 'write access' }] });
  t.like(d[2], { source: 'step', step: 3, reason: 'refused', sites: [{ va: 0xffffffff82a1aa40n, label: 'init_task' }] });
});
