/**
 * The security regression catalogue's own rules: at least 40 attacks, stable kebab-case names
 * used once, each with a title and an expected stop, each with its security test file
 * (test/security/attack-<name>.test.ts, or attack-<name>.real-kernel.test.ts where a
 * synthetic-machine test already holds the plain name), and guest/attacks/ importing nothing
 * from hypervisor/ or verifier-vm/ (an attack is guest code).
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ATTACKS, checkCatalogue } from '../../guest/attacks/catalogue.ts';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';

const root = repoRoot();

test('at least 40 attacks, kebab-case, unique, described', (t) => {
  t.notThrows(() => checkCatalogue());
  t.true(ATTACKS.length >= 40, `${ATTACKS.length} attacks`);
  for (const a of ATTACKS) {
    t.true(a.title.length > 10, a.name);
    t.true(a.expectedStop.length > 10, a.name);
  }
});

test('every attack has its test file under test/security', (t) => {
  for (const a of ATTACKS) {
    const plain = join(root, 'test', 'security', `attack-${a.name}.test.ts`);
    const real = join(root, 'test', 'security', `attack-${a.name}.real-kernel.test.ts`);
    const file = existsSync(real) ? real : plain;
    t.true(existsSync(file), `no test for ${a.name}`);
    if (existsSync(file)) t.true(readFileSync(file, 'utf8').includes(`'${a.name}'`), `${file} does not run ${a.name}`);
  }
});

test('guest/attacks imports nothing from hypervisor/ or verifier-vm/', (t) => {
  const dir = join(root, 'guest', 'attacks');
  for (const f of readdirSync(dir).filter((x) => x.endsWith('.ts'))) {
    const src = readFileSync(join(dir, f), 'utf8');
    for (const m of src.matchAll(/from '([^']+)'/g)) t.false(/(^|\/)(hypervisor|verifier-vm|runtime)\//.test(m[1]!), `${f} imports ${m[1]}`);
  }
});
