/**
 * A plugin is the user's code, and the engine trusts nothing it returns (issue 15, class 5).
 * The attack (or the bug): a plugin answers `undefined`, `null` items, a decision that is not
 * one of the three, a denial as a promise, or throws from a getter; one claims request kinds
 * that do not exist or has no name; configuration names a plugin that does not run. The
 * expected stop: every malformed answer is a denial naming the plugin and what was wrong, on
 * the protocol path and on the record path alike; an async denial is awaited and wins; a
 * malformed plugin is refused when it is loaded.
 */
import test from 'ava';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NOP5, SYNTHETIC, ftraceCall, loadPluginModule, patchItem, pluginTestVerifier } from '../../tools/plugin-testing.ts';
import { PatchRecords } from '../../shared/ring/patch-records.ts';
import { buildVerifier } from '../../verifier-vm/verifier-setup.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import type { AnyPlugin } from '../../verifier-vm/plugin-api.ts';
import type { Verdict } from '../../shared/protocol.ts';

const site = SYNTHETIC.mcountSites[0]!;
const ftraceOn = patchItem('ftrace', site, NOP5, ftraceCall(site, SYNTHETIC.ftraceCaller));

/** A text-patch plugin answering `answer` (for every request). */
const answering = (answer: () => unknown): AnyPlugin => ({
  name: 'user-plugin',
  description: 'under test',
  kinds: ['text-patch', 'module-unload'],
  decide: answer as AnyPlugin['decide'],
});

/** The verdict on one allowed ftrace item, over protocol items and over records, with the built-ins (ftrace allows it) and the user's plugin. */
async function bothPaths(plugin: AnyPlugin): Promise<Verdict[]> {
  const v = pluginTestVerifier({ plugins: [plugin] });
  const object = await v.engine.verify({ v: 1, id: 1, vm: 'vm0', kind: 'text-patch', items: [ftraceOn] }, { async: true });
  const records = PatchRecords.fromItems([ftraceOn]);
  if (typeof records === 'string') throw new Error(records);
  const packed = await v.engine.verifyPatchRecords(2, 'vm0', records, { async: true });
  return [object, { ...packed.verdict, v: 1, items: undefined } as unknown as Verdict];
}

const garbage: ReadonlyArray<[string, () => unknown, RegExp]> = [
  ['undefined', () => undefined, /returned a malformed result: undefined, not an object/],
  ['null items', () => ({ decision: 'abstain', reason: 'x', items: [null] }), /items\[0\] is null/],
  ['a garbage decision', () => ({ decision: 'maybe', reason: 'x' }), /decision is "maybe", not allow, deny or abstain/],
  ['items for another batch', () => ({ decision: 'abstain', reason: 'x', items: [] }), /items has 0 entries for 1 items/],
  ['a reason that is not text', () => ({ decision: 'allow', reason: 42 }), /reason is 42, not a string/],
  [
    'a getter that throws',
    () => ({
      get decision(): string {
        throw new Error('boom');
      },
      reason: 'x',
    }),
    /returned a result that cannot be read: boom/,
  ],
  [
    'a throw',
    () => {
      throw new TypeError('oops');
    },
    /plugin user-plugin failed: oops/,
  ],
  ['a rejected promise', () => Promise.reject(new Error('later')), /plugin user-plugin failed: later/],
  ['a promise of garbage', () => Promise.resolve(7), /returned a malformed result: 7/],
];

for (const [what, answer, why] of garbage) {
  test(`a plugin that returns ${what} denies, naming the plugin, on both paths`, async (t) => {
    for (const verdict of await bothPaths(answering(answer))) {
      t.false(verdict.ok, 'not taken as an abstention: the built-in ftrace plugin allowed the item');
      t.regex(verdict.reason, /user-plugin: plugin user-plugin /);
      t.regex(verdict.reason, why);
      t.true(verdict.plugins.includes('user-plugin'));
    }
  });
}

test('an async decide that denies is awaited and wins over an allow, on both paths', async (t) => {
  const plugin = answering(async () => {
    await new Promise((r) => setTimeout(r, 5));
    return { decision: 'deny', reason: 'not today' };
  });
  for (const verdict of await bothPaths(plugin)) {
    t.false(verdict.ok);
    t.is(verdict.reason, 'user-plugin: not today');
  }
});

test("requests wait for an asynchronous decision before them: the second sees the first one's commit", async (t) => {
  const seen: number[] = [];
  let committed = 0;
  const plugin: AnyPlugin = {
    name: 'slow',
    description: 'allows module unloads after a while and counts commits',
    kinds: ['module-unload'],
    async decide() {
      seen.push(committed);
      await new Promise((r) => setTimeout(r, 10));
      return { decision: 'allow', reason: 'ok' };
    },
    commit() {
      committed++;
    },
  };
  const v = pluginTestVerifier({ builtins: false, plugins: [plugin] });
  const both = await Promise.all([1, 2].map((id) => v.engine.verify({ v: 1, id, vm: 'vm0', kind: 'module-unload', name: 'm' }, { async: true })));
  t.deepEqual(
    both.map((x) => x.ok),
    [true, true],
  );
  t.deepEqual(seen, [0, 1], 'the second decide ran after the first commit');
});

test('the synchronous verify refuses a promise it cannot wait for, and swallows its rejection', (t) => {
  const v = pluginTestVerifier({ plugins: [answering(() => Promise.reject(new Error('never awaited')))] });
  const verdict = v.textPatch([ftraceOn]);
  t.false(verdict.ok);
  t.regex(verdict.reason, /plugin user-plugin answered with a promise, and this verifier decides synchronously/);
});

test('a malformed plugin module is refused at load, naming the file and the problem', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-plugins-'));
  const cases: ReadonlyArray<[string, string, RegExp]> = [
    ['empty-name', `export default { name: '', description: 'd', kinds: ['text-patch'], decide() {} };`, /its name is ""/],
    [
      'unknown-kind',
      `export default { name: 'p', description: 'd', kinds: ['text-patch', 'reboot'], decide() {} };`,
      /claims the unknown request kind "reboot"/,
    ],
    ['no-kinds', `export default { name: 'p', description: 'd', kinds: [], decide() {} };`, /claims no request kinds/],
    ['no-decide', `export default { name: 'p', description: 'd', kinds: ['text-patch'] };`, /has no decide function/],
    ['bad-commit', `export default { name: 'p', description: 'd', kinds: ['text-patch'], decide() {}, commit: 1 };`, /has a commit that is not a function/],
    ['empty-array', `export default [];`, /empty array: no plugin/],
    ['no-default', `export const p = 1;`, /has no default export/],
    ['twice', `const p = { name: 'p', description: 'd', kinds: ['text-patch'], decide() {} }; export default [p, p];`, /two plugins are named p/],
  ];
  for (const [name, source, why] of cases) {
    const path = join(dir, `${name}.mjs`);
    writeFileSync(path, source);
    const e = await t.throwsAsync(loadPluginModule(path));
    t.true(e?.message.startsWith(path), name);
    t.regex(e?.message ?? '', why, name);
  }
});

test('configuration for a plugin that does not run is refused when the verifier is built', (t) => {
  const r = buildVerifier({ keyring: Keyring.empty().toData(), pluginConfig: { 'kprobe-typo': { allow: [] } } }, []);
  t.false(r.ok);
  if (!r.ok) t.regex(r.error, /plugin configuration for kprobe-typo, which is not among the verifier's plugins/);
});
