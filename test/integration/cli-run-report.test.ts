/**
 * `heki run --report` on the real kernel, read in a real browser: a small scenario (boot,
 * a signed module, ftrace on a glob, a write to kernel text, a forged text poke, a tampered
 * module, set_memory_x on data) writes its page; headless Chromium opens it from file:// and
 * the map shows .text as immutable RX and the module's text RX and rodata R, a pin on .text
 * links to the verifier's denial of the poke with its reason, the denied steps link to their
 * pins, and clicking a run shows its frames. A screenshot is saved for people to look at.
 *
 * Chromium: $HEKI_CHROMIUM or Debian's /usr/bin/chromium (`apt-get install chromium`); the
 * test is skipped, saying so, when neither is installed.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium, type Browser } from 'playwright-core';
import { main } from '../../cli/main.ts';
import type { CliIo } from '../../cli/command.ts';
import { fixtures, needsFixtures, haveFixtures } from '../helpers/fixtures.ts';

const CHROMIUM = process.env.HEKI_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
/** Without these, Chromium tries the network, which this closed network refuses. */
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** What the page's functions use of the browser (the project compiles without the DOM library). */
interface BrowserGlobals {
  getComputedStyle(e: unknown): { backgroundColor: string };
  scrollTo(x: number, y: number): void;
}

const TITLE = 'heki run --report: the map, the pinned denials and the steps, read in headless Chromium';

function io(): CliIo & { stdout: string; stderr: string } {
  const o = { stdout: '', stderr: '', cwd: process.cwd(), out: (s: string) => void (o.stdout += s), err: (s: string) => void (o.stderr += s) };
  return o;
}

/** A copy of a signed fixture module with one byte of its ELF flipped: the signature no longer matches. */
function tamperedModule(dir: string): string {
  const file = new Uint8Array(readFileSync(join(fixtures.modulesDir, 'cordic.ko')));
  file[Math.floor(file.length / 3)]! ^= 0xff;
  const path = join(dir, 'cordic.ko');
  writeFileSync(path, file);
  return path;
}

function scenario(dir: string): string {
  const path = join(dir, 'report.yaml');
  writeFileSync(
    path,
    `name: report-check
kernel: real
keys:
  certs: [${JSON.stringify(fixtures.signingKeyDer)}]
steps:
  - boot: { expect: allowed }
  - load-module: { path: ${JSON.stringify(join(fixtures.modulesDir, 'crc7.ko'))}, expect: allowed }
  - ftrace: { enable: "vfs_*", expect: allowed }
  - write: { addr: "_stext+0x10", bytes: "90", mode: kernel, expect: denied }
  - text-poke: { addr: "_stext+0x10", bytes: "cc", expect: denied }
  - load-module: { path: ${JSON.stringify(tamperedModule(dir))}, expect: denied }
  - set-memory: { addr: init_task, pages: 1, perm: x, expect: denied }
`,
  );
  return path;
}

if (haveFixtures && !haveChromium) {
  console.log(`cli-run-report: no Chromium at ${CHROMIUM} (install it with 'apt-get install chromium' or set HEKI_CHROMIUM); the browser test is skipped`);
  test.skip(`${TITLE} (no Chromium at ${CHROMIUM})`, (t) => t.pass());
} else {
  needsFixtures(test)(TITLE, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'heki-report-'));
    const out = join(dir, 'report.html');
    const run = io();
    t.is(await main(['run', scenario(dir), '--report', out], run), 0, run.stdout + run.stderr);
    t.regex(run.stdout, /report: .*report\.html \(\d+ regions, \d+ denials\)\n/);

    // eslint-disable-next-line prefer-const -- the teardown must see it even when launch throws
    let browser: Browser | undefined;
    t.teardown(() => browser?.close());
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const external: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) external.push(r.url());
    });
    await page.goto(pathToFileURL(out).href);
    t.is(await page.title(), 'heki run report: report-check');

    // The map: kernel .text immutable RX, drawn green and hatched; the module's text RX, its rodata R.
    const text = page.locator('.bar[data-owner="kernel"][data-region=".text"] .run');
    t.true((await text.count()) >= 1);
    t.deepEqual(await text.first().evaluate((e) => [...e.classList]), ['run', 'perm-rx', 'imm']);
    t.is(await text.first().evaluate((e) => (globalThis as unknown as BrowserGlobals).getComputedStyle(e).backgroundColor), 'rgb(47, 158, 91)');
    t.is((await page.locator('.bar[data-owner="kernel"][data-region=".data"] .run.perm-rw').count()) > 0, true);
    const modText = page.locator('.bar[data-owner="crc7"][data-region=".text"] .run');
    t.deepEqual(await modText.evaluateAll((es) => es.map((e) => e.getAttribute('data-perm'))), ['rx']);
    // crc7's .rodata may share its row with the module's other read-only sections (the same bar
    // folds into one row, named in its list): a read-only run of crc7 is drawn either way.
    t.true((await page.locator('.bar[data-owner="crc7"] .run[data-perm="r"]').count()) > 0);
    const rodata = page.locator('.bar[data-owner="crc7"][data-region=".rodata"] .run');
    if ((await rodata.count()) > 0) t.is(await rodata.first().getAttribute('data-perm'), 'r');
    else
      t.true(
        (await page.locator('[data-folded] details').allTextContents()).some((x) => x.includes('.rodata')),
        'crc7 .rodata is listed in a folded row',
      );
    t.is(await page.locator('#module-crc7 .badge.verified').count(), 1);

    // The verifier's denial of the forged poke: a row with its reason, pinned on .text.
    const poke = page.locator('tr.denial[data-source="verifier"]', { hasText: 'text-patch' });
    t.is(await poke.count(), 1);
    const pokeId = (await poke.getAttribute('id'))!.replace('denial-', '');
    t.regex((await poke.locator('td.reason').innerText()).trim(), /\S/);
    const pin = page.locator(`.bar[data-region=".text"] a.marker[data-denials~="${pokeId}"]`);
    t.is(await pin.count(), 1);
    await pin.click();
    const target = decodeURIComponent(new URL(page.url()).hash);
    t.regex(target, /^#denial-\d+$/);
    t.true(await page.locator(`tr${target}`).evaluate((e) => e.matches(':target')));

    // The tampered module: denied by the verifier, named in its step's row.
    const mod = page.locator('tr.denial[data-source="verifier"]', { hasText: 'module-load cordic' });
    t.is(await mod.count(), 1);
    t.regex(await page.locator('#step-6').innerText(), /denied[\s\S]*module-load cordic/);

    // The steps: every row, the verdicts, and each denied step with an address linked to its pin.
    t.is(await page.locator('tr.step').count(), 7);
    t.deepEqual(await page.locator('tr.step td.outcome').evaluateAll((es) => es.map((e) => e.classList[1])), [
      'allowed',
      'allowed',
      'allowed',
      'denied',
      'denied',
      'denied',
      'denied',
    ]);
    t.is(await page.locator('tr.step .ok').count(), 7);
    for (const step of [4, 5, 7]) {
      const href = await page.locator(`#step-${step} a.step-pin`).getAttribute('href');
      t.regex(href ?? '', /^#marker-\d+$/, `step ${step} links to its pin`);
      t.is(await page.locator(`a.marker ${href}`).count(), 1, `the pin of step ${step} exists`);
    }
    t.regex(await page.locator('#step-7').innerText(), /init_task|set_memory_x/);
    // The set_memory_x step's pin sits on .data, where init_task is.
    const dataPin = await page.locator('#step-7 a.step-pin').getAttribute('href');
    t.is(await page.locator(`.bar[data-region=".data"] ${dataPin}`).count(), 1);

    // Clicking a run shows its size and frames.
    await page.locator('.bar[data-owner="crc7"][data-region=".text"] .run').click();
    t.regex(await page.locator('#detail-body').innerText(), /crc7 \.text\n.*RX[\s\S]*1 page \(4 KiB\)\ngpa 0x[0-9a-f]+ - 0x[0-9a-f]+/);

    t.deepEqual(external, [], 'the page loads nothing from outside');
    await page.evaluate(() => (globalThis as unknown as BrowserGlobals).scrollTo(0, 0));
    const shot = join(dir, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.log(`report: ${out}`);
    t.log(`screenshot: ${shot}`);
  });
}
