/**
 * `heki replay --plugin` runs the user's code (issue 15, class 5). The attacks (or bugs): a
 * plugin that loops in `decide`, never settles its promise, or loops while it is imported;
 * one that returns garbage or denies asynchronously; a malformed plugin; `--config` for a
 * plugin that does not exist. The expected stop: a clear error naming the line or the
 * problem and exit 2 for what cannot be replayed, within the stated bound (never a hang); a
 * garbage answer or an async denial is a verdict (a denial naming the plugin), never a stack
 * trace or an abstention.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeLogLine, logHeader } from '../../shared/request-log.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { heki } from '../helpers/cli.ts';

// The bound on one request: short, so the looping plugins are stopped quickly.
process.env['HEKI_VERIFIER_TIMEOUT_MS'] = '1500';

const dir = mkdtempSync(join(tmpdir(), 'heki-replay-untrusted-'));
const LOG = join(dir, 'requests.jsonl');
// A recording of a verifier without built-in plugins that denied one module unload.
writeFileSync(
  LOG,
  [
    encodeLogLine(logHeader({ scenario: 'untrusted', source: 'untrusted.yaml', created: new Date(0) })),
    encodeLogLine({ type: 'verifier', vm: 'vm0', init: { keyring: Keyring.empty().toData(), plugins: [] } }),
    encodeLogLine({
      type: 'request',
      seq: 0,
      vm: 'vm0',
      kind: 'module-unload',
      request: { kind: 'module-unload', vm: 'vm0', name: 'm' },
      verdict: { v: 1, id: 1, ok: false, reason: 'no plugin claims module-unload requests (default deny)', plugins: [] },
    }),
    encodeLogLine({ type: 'end', requests: 1 }),
  ].join('\n') + '\n',
);

/** A plugin module claiming module-unload whose decide body is `body` (and `top` runs at import). */
function plugin(name: string, body: string, top = ''): string {
  const path = join(dir, `${name}.mjs`);
  writeFileSync(
    path,
    `${top}\nexport default { name: ${JSON.stringify(name)}, description: 'under test', kinds: ['module-unload'], decide(request, ctx) { ${body} } };\n`,
  );
  return path;
}

const noStack = (err: string): boolean => !/\n\s+at /.test(err);

for (const [what, body, why] of [
  ['loops in decide', 'for (;;) {}', /made no progress for 1\.5 s: a plugin loops or never settles its promise/],
  [
    'never settles its promise (a timer keeps the thread alive)',
    'return new Promise(() => { setInterval(() => {}, 1000); });',
    /made no progress for 1\.5 s: a plugin loops or never settles its promise/,
  ],
  ['never settles its promise (nothing left to settle it)', 'return new Promise(() => {});', /: a plugin's promise can never settle/],
] as const) {
  test.serial(`a plugin that ${what} is stopped: exit 2, naming the line`, async (t) => {
    const r = await heki(['replay', LOG, '--plugin', plugin(what.replace(/\W+/g, '-').slice(0, 40), body)]);
    t.is(r.code, 2, r.err);
    t.regex(r.err, /^heki replay: line 3: deciding the module-unload request/);
    t.regex(r.err, why);
    t.true(noStack(r.err));
  });
}

test.serial('a plugin module that loops while it is imported is stopped: exit 2', async (t) => {
  t.timeout(120_000);
  const r = await heki(['replay', LOG, '--plugin', plugin('loops-at-import', 'return { decision: "allow", reason: "x" };', 'for (;;) {}')]);
  t.is(r.code, 2, r.err);
  t.regex(r.err, /loading the plugins under test took longer than 20\.0 s: a plugin module loops or never finishes loading/);
});

test.serial('a plugin that returns garbage is a denial naming it, not a crash', async (t) => {
  const r = await heki(['replay', LOG, '--json', '--plugin', plugin('garbage', 'return undefined;')]);
  t.true(noStack(r.err), r.err);
  const out = JSON.parse(r.out) as { differences: Array<{ replayed: { ok: boolean; reason: string } }> };
  t.is(r.code, 1, 'the reason differs from the recorded one');
  t.false(out.differences[0]!.replayed.ok);
  t.is(out.differences[0]!.replayed.reason, 'garbage: plugin garbage returned a malformed result: undefined, not an object {decision, reason}');
});

test.serial('an async decide is awaited: its denial is the verdict, its allowance too', async (t) => {
  const denies = await heki([
    'replay',
    LOG,
    '--json',
    '--plugin',
    plugin('async-deny', 'return Promise.resolve({ decision: "deny", reason: "not this one" });'),
  ]);
  t.is(denies.code, 1);
  t.like((JSON.parse(denies.out) as { differences: unknown[] }).differences[0], { replayed: { ok: false, reason: 'async-deny: not this one' } });
  const allows = await heki([
    'replay',
    LOG,
    '--json',
    '--plugin',
    plugin('async-allow', 'return new Promise((r) => setTimeout(() => r({ decision: "allow", reason: "fine" }), 5));'),
  ]);
  t.is(allows.code, 1);
  t.like((JSON.parse(allows.out) as { differences: unknown[] }).differences[0], { replayed: { ok: true, reason: 'async-allow: fine' } });
});

test.serial('a malformed plugin and --config for a plugin that does not run are exit 2, named', async (t) => {
  const unnamed = join(dir, 'unnamed.mjs');
  writeFileSync(unnamed, `export default { name: '', description: 'd', kinds: ['module-unload'], decide() { return { decision: 'allow', reason: 'x' }; } };\n`);
  const r = await heki(['replay', LOG, '--plugin', unnamed]);
  t.is(r.code, 2);
  t.regex(r.err, /--plugin .*unnamed\.mjs: cannot load: .*default export is not a verifier plugin: its name is ""/);
  const kinds = join(dir, 'kinds.mjs');
  writeFileSync(
    kinds,
    `export default { name: 'k', description: 'd', kinds: ['module-unload', 'format-disk'], decide() { return { decision: 'allow', reason: 'x' }; } };\n`,
  );
  t.regex((await heki(['replay', LOG, '--plugin', kinds])).err, /claims the unknown request kind "format-disk"/);
  const c = await heki(['replay', LOG, '--plugin', plugin('configured', 'return { decision: "abstain", reason: "x" };'), '--config', '{"configurd":{"x":1}}']);
  t.is(c.code, 2);
  t.regex(
    c.err,
    /requests\.jsonl:2: cannot rebuild the recorded verifier: plugin configuration for configurd, which is not among the verifier's plugins \(configured\)/,
  );
});
