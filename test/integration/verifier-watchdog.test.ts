/**
 * The link fails closed on lack of progress, not by the clock (hypervisor/verifier-link/
 * watchdog.ts, shared/progress.ts). The attacks (or bugs): a plugin that loops forever in its
 * synchronous code, which no timer inside the worker can interrupt; a plugin that keeps the
 * verifier's progress word moving and never answers. The expected stops: the looping plugin
 * is cut at the no-progress bound (long before the ceiling), its request denied "verifier
 * unavailable" and audited by the core, the worker ended and the spare serving the next
 * request; the plugin that reports progress forever is cut at the absolute ceiling. And the
 * other way: a request whose work goes on past the no-progress bound while it keeps
 * reporting is answered, not cut.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VerifierLink } from '../../hypervisor/verifier-link/verifier-link.ts';
import { createMachineDetailed } from '../../machine/machine.ts';
import { VERIFIER_UNAVAILABLE } from '../../shared/protocol.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

const keys = testKeyring();
const realTest = needsFixtures(test);
const dir = mkdtempSync(join(tmpdir(), 'heki-watchdog-'));
const PROGRESS = fileURLToPath(new URL('../../shared/progress.ts', import.meta.url));

/** A plugin module claiming `kinds` whose decide body is `body` (`top` runs at import). */
function plugin(name: string, body: string, kinds: readonly string[] = ['module-unload'], top = ''): string {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(
    path,
    `${top}\nexport default { name: ${JSON.stringify(name)}, description: 'under test', kinds: ${JSON.stringify(kinds)}, decide(request) { ${body} } };\n`,
  );
  return path;
}

const unload = (name: string) => ({ kind: 'module-unload' as const, vm: 'vm0', name });

/** Loops forever on an unload of "spin", allows every other. */
const LOOPS_ON_SPIN = 'if (request.name === "spin") { while (true) {} } return { decision: "allow", reason: "fine" };';

test('a plugin that loops forever is cut at the no-progress bound, not the ceiling; the spare decides the next request', async (t) => {
  const link = await VerifierLink.start({
    init: { keyring: keys.data, plugins: [], pluginModules: [plugin('loops', LOOPS_ON_SPIN)] },
    timeoutMs: 500,
    ceilingMs: 60_000,
  });
  t.teardown(() => link.dispose());
  t.true((await link.verify(unload('m'))).ok, 'the plugin allows other requests');
  const started = performance.now();
  const v = await link.verify(unload('spin'));
  const took = performance.now() - started;
  t.false(v.ok);
  t.regex(v.reason, new RegExp(`^${VERIFIER_UNAVAILABLE}: the verifier made no progress for \\d+ ms \\(bound 500 ms\\)$`));
  // Cut by the progress rule: far from the 60 s ceiling however loaded the host is.
  t.true(took < 30_000, `cut after ${Math.round(took)} ms`);
  t.is(link.stats.failClosed, 1);
  t.true(link.stats.restarts >= 1, 'the looping worker was replaced');
  const next = await link.verify(unload('m'));
  t.true(next.ok, next.reason);
});

test('over the ring and over comlink alike, a looping text-patch plugin is cut and the batch denied', async (t) => {
  const body = 'while (true) {}';
  for (const transport of ['ring', 'comlink'] as const) {
    const link = await VerifierLink.start({
      init: { keyring: keys.data, plugins: [], pluginModules: [plugin(`loops-${transport}`, body, ['text-patch'])] },
      spare: false,
      timeoutMs: 400,
      transport,
    });
    const nop = Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0);
    const v = await link.verify({
      kind: 'text-patch',
      vm: 'vm0',
      items: [{ kind: 'ftrace', site: 0xffffffff81000100n, oldBytes: nop, newBytes: nop, currentBytes: nop }],
    });
    await link.dispose();
    t.false(v.ok, transport);
    t.regex(v.reason, /verifier unavailable: the verifier made no progress for \d+ ms \(bound 400 ms\)/, transport);
    if (transport === 'ring') t.is(link.stats.viaRing, 1, 'sent on the ring');
  }
});

test('work that keeps reporting progress outlives the no-progress bound; progress reported forever is cut at the ceiling', async (t) => {
  const top = `import { reportProgress } from ${JSON.stringify(PROGRESS)};`;
  // Busy for `ms` of wall time, reporting progress every millisecond, as the verifier's own checks do.
  const busy = (ms: string) =>
    `const end = performance.now() + ${ms}; while (performance.now() < end) { const s = performance.now(); while (performance.now() - s < 1) {} reportProgress(); }`;
  const slow = plugin('slow-but-progressing', `${busy('3000')} return { decision: "allow", reason: "done" };`, ['module-unload'], top);
  const link = await VerifierLink.start({ init: { keyring: keys.data, plugins: [], pluginModules: [slow] }, spare: false, timeoutMs: 1000, ceilingMs: 60_000 });
  t.teardown(() => link.dispose());
  const v = await link.verify(unload('m'));
  t.true(v.ok, v.reason);
  t.is(link.stats.failClosed, 0);

  const forever = plugin('progress-forever', `${busy('Infinity')}`, ['module-unload'], top);
  const capped = await VerifierLink.start({
    init: { keyring: keys.data, plugins: [], pluginModules: [forever] },
    spare: false,
    timeoutMs: 1000,
    ceilingMs: 3000,
  });
  t.teardown(() => capped.dispose());
  const c = await capped.verify(unload('m'));
  t.false(c.ok);
  t.is(c.reason, `${VERIFIER_UNAVAILABLE}: a request was not answered within the 3000 ms ceiling`);
});

realTest('the core audits the denial: a real boot whose kernel-text plugin loops is refused "verifier unavailable", once, and recorded', async (t) => {
  const loops = plugin('kernel-text-loops', 'while (true) {}', ['kernel-text']);
  const m = await createMachineDetailed({
    kernel: 'real',
    keys: { pubkeys: [], certs: [fixtures.signingKeyDer], revoked: [] },
    pluginModules: [loops],
    verifierTimeoutMs: 500,
  });
  if (!m.ok) return t.fail(m.error.message);
  t.teardown(() => m.value.dispose());
  const mark = m.value.verdictMark();
  const b = await m.value.boot();
  t.not(b.outcome, 'allowed');
  const denied = m.value.deniedSince(mark).filter((r) => r.startsWith('kernel-text '));
  t.is(denied.length, 1, denied.join(' | '));
  t.regex(denied[0] ?? '', /: verifier unavailable: the verifier made no progress for \d+ ms \(bound 500 ms\)$/);
  t.true(m.value.link.stats.restarts >= 1, 'the verifier was restarted');
});
