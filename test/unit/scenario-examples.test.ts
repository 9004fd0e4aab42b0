/**
 * The example scenarios in scenarios/ are well-formed, the files they name exist (when the
 * kernel fixtures are present), and the default one covers what the README promises: boot,
 * signed modules, ftrace on all sites and back, and attacks that are each expected denied.
 */
import test from 'ava';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';
import { loadScenario, type Scenario } from '../../scenario/index.ts';
import { needsFixtures } from '../helpers/fixtures.ts';

const dir = join(repoRoot(), 'scenarios');
const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));

function load(file: string): Scenario {
  const r = loadScenario(join(dir, file), `scenarios/${file}`);
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

test('there is a demo and at least two smaller examples', (t) => {
  t.true(files.includes('demo.yaml'));
  t.true(files.length >= 3);
});

for (const file of files) {
  test(`scenarios/${file} is well-formed and its name matches the file`, (t) => {
    const s = load(file);
    t.is(`${s.name}.yaml`, file);
    t.true(s.steps.length > 0);
  });
}

needsFixtures(test)('every file the examples name exists (modules, certificates)', (t) => {
  for (const file of files) {
    const s = load(file);
    const paths = [...s.keys.pubkeys, ...s.keys.certs, ...s.keys.revoked, ...s.steps.flatMap((x) => (x.op === 'load-module' ? [x.path] : []))];
    for (const p of paths) t.true(existsSync(p), `${file}: ${p} does not exist`);
  }
});

test('demo.yaml: boot, signed modules, ftrace all on and off, five kinds of attack expected denied', (t) => {
  const s = load('demo.yaml');
  t.is(s.kernel, 'real');
  t.true(s.keys.certs.some((c) => c.endsWith('signing_key.x509.der')));
  const ops = s.steps.map((x) => x.op);
  t.is(ops[0], 'boot');
  t.true(s.steps.some((x) => x.op === 'load-module' && x.path.endsWith('virtio_net.ko') && x.expect === 'allowed'));
  t.true(s.steps.some((x) => x.op === 'ftrace' && x.action === 'enable' && x.target === 'all'));
  t.true(s.steps.some((x) => x.op === 'ftrace' && x.action === 'disable' && x.target === 'all'));
  const denied = new Set(s.steps.filter((x) => x.expect === 'denied').map((x) => x.op));
  for (const op of ['write', 'exec', 'write-cr', 'write-msr', 'set-memory'] as const) t.true(denied.has(op), op);
  t.true(
    s.steps.every((x) => x.expect !== null),
    'every demo step states its expectation',
  );
});
