/**
 * Issue 15, class 10: `unload-module` takes `path` (as `load-module` does) as well as `name`,
 * and a step can say `expect: error`, so a regression file can pin "this corrupt module is
 * refused as malformed". Before: `path` was an unknown key and `expect: error` was refused
 * by the parser.
 */
import test from 'ava';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseScenario, runScenario, ScriptedMachine, type Scenario } from '../../scenario/index.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

function scenario(dir: string, steps: string): Scenario {
  const r = parseScenario(`name: t\nsteps:\n${steps}`, { path: join(dir, 's.yaml') });
  if (!r.ok) throw new Error(r.error.problems.map((p) => `${p.line}: ${p.message}`).join('\n'));
  return r.value;
}

function folder(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-unload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

needsFixtures(test)('unload-module by path unloads the module its .modinfo names (file crc7.ko, copied as crc-7.ko)', async (t) => {
  const dir = folder(t);
  copyFileSync(join(fixtures.modulesDir, 'crc7.ko'), join(dir, 'crc-7.ko'));
  const m = new ScriptedMachine();
  const r = await runScenario(scenario(dir, '  - boot: {}\n  - load-module: { path: crc-7.ko }\n  - unload-module: { path: crc-7.ko, expect: allowed }\n'), m);
  t.true(r.passed, JSON.stringify(r.steps));
  t.deepEqual(m.calls.at(-1), { method: 'unloadModule', args: ['crc7'] });
});

test('expect: error pins a corrupt module refused as malformed; an unexpected success fails the step', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'corrupt.ko'), Buffer.from('\x7fELF but not really a module'));
  const m = new ScriptedMachine();
  const r = await runScenario(
    scenario(
      dir,
      '  - boot: { expect: error }\n  - unload-module: { path: corrupt.ko, expect: error }\n  - unload-module: { path: missing.ko, expect: error }\n  - unload-module: { path: corrupt.ko }\n',
    ),
    m,
  );
  t.deepEqual(
    r.steps.map((s) => [s.op, s.outcome, s.expected, s.ok]),
    [
      ['boot', 'allowed', 'error', false],
      ['unload-module', 'error', 'error', true],
      ['unload-module', 'error', 'error', true],
      ['unload-module', 'error', null, false],
    ],
  );
  t.regex(r.steps[1]!.reason, /corrupt\.ko: /);
  t.regex(r.steps[2]!.reason, /cannot read module .*missing\.ko: cannot read: no such file/);
  t.false(
    m.calls.some((c) => c.method === 'unloadModule'),
    'a file that is not a module never reaches the machine',
  );
  t.like(JSON.parse(JSON.stringify(r)), { passed: false, steps: [{ expected: 'error' }, { expected: 'error', ok: true }] });
});
