/**
 * Plugin modules in the verifier worker (WorkerInit.pluginModules) are the user's code
 * (issue 15, class 5). The attacks (or bugs): a module that loops while it is imported, a
 * malformed plugin, a plugin that denies asynchronously or answers garbage, one that never
 * settles. The expected stop: the VM does not start, with a message naming the problem (no
 * hang); an async denial denies; garbage is a denial naming the plugin; a promise that never
 * settles is cut by the link's fail-closed timeout.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VerifierLink } from '../../hypervisor/verifier-link/verifier-link.ts';
import { VERIFIER_UNAVAILABLE } from '../../shared/protocol.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';

const keys = testKeyring();
const dir = mkdtempSync(join(tmpdir(), 'heki-worker-plugins-'));

/** A plugin module claiming `kinds` whose decide body is `body` (`top` runs at import). */
function plugin(name: string, body: string, top = '', kinds = ['module-unload']): string {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(
    path,
    `${top}\nexport default { name: ${JSON.stringify(name)}, description: 'under test', kinds: ${JSON.stringify(kinds)}, decide() { ${body} } };\n`,
  );
  return path;
}

const unload = { kind: 'module-unload' as const, vm: 'vm0', name: 'm' };

test('a plugin module that loops while it is imported stops the worker at the init bound: the VM does not start', async (t) => {
  const path = plugin('loops-at-import', 'return { decision: "allow", reason: "x" };', 'for (;;) {}');
  const e = await t.throwsAsync(VerifierLink.start({ init: { keyring: keys.data, pluginModules: [path] }, spare: false, initTimeoutMs: 2000 }));
  t.regex(
    e?.message ?? '',
    /the verifier VM refused to start: the verifier's init did not finish within 2000 ms \(a plugin module that loops or never finishes loading\?\)/,
  );
});

test('a malformed plugin module, or configuration for a plugin that is not loaded, stops the VM from starting, naming why', async (t) => {
  const bad = join(dir, 'kinds.mjs');
  writeFileSync(bad, `export default { name: 'k', description: 'd', kinds: ['reboot'], decide() { return { decision: 'allow', reason: 'x' }; } };\n`);
  const e = await t.throwsAsync(VerifierLink.start({ init: { keyring: keys.data, pluginModules: [bad] }, spare: false }));
  t.regex(e?.message ?? '', /cannot load plugin module .*kinds\.mjs: .*default export is not a verifier plugin: k claims the unknown request kind "reboot"/);
  const c = await t.throwsAsync(VerifierLink.start({ init: { keyring: keys.data, pluginConfig: { 'no-such-plugin': {} } }, spare: false }));
  t.regex(c?.message ?? '', /plugin configuration for no-such-plugin, which is not among the verifier's plugins/);
});

test('in the worker an async denial is awaited and wins, garbage denies naming the plugin, and a promise that never settles fails closed', async (t) => {
  const link = await VerifierLink.start({
    init: {
      keyring: keys.data,
      plugins: [],
      pluginModules: [
        plugin('allows', 'return { decision: "allow", reason: "fine" };'),
        plugin('async-deny', 'return new Promise((r) => setTimeout(() => r({ decision: "deny", reason: "not this one" }), 5));'),
      ],
    },
    spare: false,
  });
  t.teardown(() => link.dispose());
  const v = await link.verify(unload);
  t.false(v.ok);
  t.is(v.reason, 'async-deny: not this one');

  const garbage = await VerifierLink.start({
    init: { keyring: keys.data, plugins: [], pluginModules: [plugin('garbage', 'return { decision: "yes", reason: 1 };')] },
    spare: false,
  });
  t.teardown(() => garbage.dispose());
  const g = await garbage.verify(unload);
  t.false(g.ok);
  t.is(g.reason, 'garbage: plugin garbage returned a malformed result: decision is "yes", not allow, deny or abstain');

  const never = await VerifierLink.start({
    init: { keyring: keys.data, plugins: [], pluginModules: [plugin('never', 'return new Promise(() => { setInterval(() => {}, 1000); });')] },
    spare: false,
    timeoutMs: 1500,
  });
  t.teardown(() => never.dispose());
  const n = await never.verify(unload);
  t.false(n.ok);
  t.true(n.reason.startsWith(VERIFIER_UNAVAILABLE), n.reason);
});

test("over the verification ring too, a text-patch plugin's async denial is awaited and wins over an async allowance", async (t) => {
  const later = (d: string): string => `return new Promise((r) => setTimeout(() => r({ decision: "${d}", reason: "later ${d}" }), 5));`;
  const link = await VerifierLink.start({
    init: {
      keyring: keys.data,
      plugins: [],
      pluginModules: [plugin('later-allow', later('allow'), '', ['text-patch']), plugin('later-deny', later('deny'), '', ['text-patch'])],
    },
    spare: false,
    transport: 'ring',
  });
  t.teardown(() => link.dispose());
  const nop = Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0);
  const v = await link.verify({
    kind: 'text-patch',
    vm: 'vm0',
    items: [{ kind: 'ftrace', site: 0xffffffff81000100n, oldBytes: nop, newBytes: nop, currentBytes: nop }],
  });
  t.false(v.ok);
  t.is(v.reason, 'later-deny: later deny');
  t.true(link.stats.viaRing > 0, 'decided on the ring');
});
