/**
 * The security regression catalogue's own rules: at least 65 attacks, stable kebab-case names
 * used once, each with a title and an expected stop, each with its security test file
 * (test/security/attack-<name>.test.ts, or attack-<name>.real-kernel.test.ts where a
 * synthetic-machine test already holds the plain name), and guest/attacks/ importing nothing
 * from hypervisor/ or verifier-vm/ (an attack is guest code); the boot touch-up attacks by
 * name, and which shipped CPU models each applies to (the runner's not-applicable verdict).
 */
import test from 'ava';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ATTACKS, attackByName, checkCatalogue } from '../../guest/attacks/catalogue.ts';
import { BOOT_TOUCHUP_ATTACKS } from '../../guest/attacks/boot-touchups.ts';
import { describeCpuNeeds, unmetCpuNeeds } from '../../guest/attacks/cpu-needs.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';

const root = repoRoot();

test('at least 65 attacks, kebab-case, unique, described', (t) => {
  t.notThrows(() => checkCatalogue());
  t.true(ATTACKS.length >= 65, `${ATTACKS.length} attacks`);
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

test('the six boot touch-up attacks are in the catalogue, each expecting the end-of-boot refusal naming its table', (t) => {
  const tables: Record<string, string> = {
    'boot-mitigation-alternative-unapplied': '.altinstructions',
    'boot-alternative-without-cpu-bug': '.altinstructions',
    'boot-return-thunks-to-ret': '.return_sites',
    'boot-smp-locks-stripped': '.smp_locks',
    'boot-paravirt-site-to-attacker-code': '.parainstructions',
    'boot-static-call-site-to-attacker-code': '.static_call_sites',
  };
  t.deepEqual(
    BOOT_TOUCHUP_ATTACKS.map((a) => a.name),
    Object.keys(tables),
  );
  for (const [name, table] of Object.entries(tables)) {
    const a = attackByName(name);
    t.truthy(a, name);
    t.true(a!.expectedStop.startsWith('-KVM_EPERM from KVM_HC_HEKI_END_BOOT'), name);
    t.true(a!.expectedStop.includes(`(${table})`), name);
  }
});

test('which shipped CPU model each boot touch-up attack applies to, and why not where it does not', (t) => {
  const model = (n: string) => BUILTIN_CPU_MODELS.get(n)!;
  const unmet = (name: string, cpu: string): string | undefined => {
    const needs = attackByName(name)!.needs?.cpu;
    return needs ? unmetCpuNeeds(model(cpu), needs) : undefined;
  };
  for (const cpu of BUILTIN_CPU_MODELS.keys()) {
    for (const name of [
      'boot-mitigation-alternative-unapplied',
      'boot-alternative-without-cpu-bug',
      'boot-paravirt-site-to-attacker-code',
      'boot-static-call-site-to-attacker-code',
    ])
      t.is(unmet(name, cpu), undefined, `${name} on ${cpu}`);
  }
  t.is(unmet('boot-return-thunks-to-ret', 'skylake-smp2'), undefined);
  t.is(unmet('boot-return-thunks-to-ret', 'epyc-smp2'), undefined);
  t.is(unmet('boot-return-thunks-to-ret', 'qemu64-up'), 'it has no X86_FEATURE_RETHUNK');
  t.is(unmet('boot-smp-locks-stripped', 'skylake-smp2'), undefined);
  t.is(unmet('boot-smp-locks-stripped', 'epyc-smp2'), undefined);
  t.regex(unmet('boot-smp-locks-stripped', 'qemu64-up')!, /^it has 1 CPU present, so boot patches the lock prefixes to UP/);
  // noreplace-smp keeps the prefixes on one CPU too: the attack applies there.
  t.is(unmetCpuNeeds({ ...model('qemu64-up'), cmdline: `${model('qemu64-up').cmdline} noreplace-smp` }, { smp: true }), undefined);
  t.is(describeCpuNeeds({ features: ['RETHUNK'] }), 'a CPU model with X86_FEATURE_RETHUNK');
  t.is(describeCpuNeeds({ smp: true }), 'a CPU model with more than one CPU present (SMP lock prefixes kept)');
});
