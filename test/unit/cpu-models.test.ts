/**
 * CPU models (hypervisor/vmm/cpu-models.ts): the three named ones boot without the fixtures,
 * their embedded words are the real kernel's, reference folders are models, and bad folders
 * and names are refused naming the problem.
 */
import test from 'ava';
import { mkdtempSync, mkdirSync, writeFileSync, copyFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fixtureDir, needsFixtures } from '../helpers/fixtures.ts';
import { loadCpuModelFolder, resolveCpuModel, MAX_REFERENCE_JSON_BYTES } from '../../hypervisor/vmm/cpu-models.ts';
import { BUILTIN_CPU_MODELS, DEFAULT_CPU_MODEL, DEFAULT_CPU_MODEL_NAME } from '../../shared/x86/cpu-models-builtin.ts';
import { validateCpuModel } from '../../shared/x86/cpu-model.ts';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';

const fixtureTest = needsFixtures(test);
const refDir = (name: string): string => join(fixtureDir, 'reference', name);
const HOTPLUG = join(repoRoot(), 'test', 'fixtures', 'cpu-models', 'qemu64-up-hotplug');

test('the default model is skylake-smp2 (Intel, SMP: the most touch-up kinds)', (t) => {
  t.is(DEFAULT_CPU_MODEL_NAME, 'skylake-smp2');
  const r = resolveCpuModel(undefined);
  t.true(r.ok);
  if (r.ok) t.is(r.value.name, 'skylake-smp2');
  t.is(DEFAULT_CPU_MODEL.vendorId, 'GenuineIntel');
  t.is(DEFAULT_CPU_MODEL.presentCpus, 2);
});

test('the three named models resolve from the embedded constants and pass the model check', (t) => {
  t.deepEqual([...BUILTIN_CPU_MODELS.keys()], ['qemu64-up', 'skylake-smp2', 'epyc-smp2']);
  for (const name of BUILTIN_CPU_MODELS.keys()) {
    const r = resolveCpuModel(name);
    if (!r.ok) return t.fail(r.error);
    t.is(r.value.name, name);
    t.true(validateCpuModel(r.value).ok, name);
  }
  t.is(BUILTIN_CPU_MODELS.get('qemu64-up')!.presentCpus, 1);
});

fixtureTest('the embedded constants are the reference folders: boot_cpu_data.bin, smp and cmdline', (t) => {
  for (const [name, embedded] of BUILTIN_CPU_MODELS) {
    const fromFolder = loadCpuModelFolder(refDir(name));
    if (!fromFolder.ok) return t.fail(fromFolder.error);
    t.deepEqual({ ...fromFolder.value, name }, embedded, name);
  }
});

test('a user folder is a model: possible CPUs from "possible", present from "smp"', (t) => {
  const r = resolveCpuModel(HOTPLUG);
  if (!r.ok) return t.fail(r.error);
  t.is(r.value.name, HOTPLUG);
  t.is(r.value.presentCpus, 1);
  t.is(r.value.possibleCpus, 2);
  t.is(r.value.vendorId, 'AuthenticAMD');
  t.deepEqual(r.value.capabilities, BUILTIN_CPU_MODELS.get('qemu64-up')!.capabilities);
});

function folder(t: { teardown(f: () => void): void }, json: unknown, bin = true): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-cpu-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'reference.json'), typeof json === 'string' ? json : JSON.stringify(json));
  if (bin) copyFileSync(join(HOTPLUG, 'boot_cpu_data.bin'), join(dir, 'boot_cpu_data.bin'));
  return dir;
}

test('"maxcpus" is a synonym of "possible"; both given and different is refused', (t) => {
  const ok = resolveCpuModel(folder(t, { smp: 2, maxcpus: 4, cmdline: '' }));
  t.true(ok.ok && ok.value.possibleCpus === 4);
  const bad = resolveCpuModel(folder(t, { smp: 2, maxcpus: 4, possible: 3, cmdline: '' }));
  t.false(bad.ok);
  if (!bad.ok) t.regex(bad.error, /"possible" and "maxcpus" differ/);
});

test('bad models are refused naming the problem', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['no-such-model', /no such model \(named models: qemu64-up, skylake-smp2, epyc-smp2\)/],
    ['', /empty name/],
    [join(HOTPLUG, 'reference.json'), /not a folder/],
    [folder(t, '{not json'), /reference\.json: not JSON/],
    [folder(t, [1, 2]), /not a JSON object/],
    [folder(t, { cmdline: '' }), /"smp" .* is missing/],
    [folder(t, { smp: 0, cmdline: '' }), /"smp" must be a positive integer/],
    [folder(t, { smp: 2, possible: 1, cmdline: '' }), /possibleCpus must be an integer from presentCpus \(2\)/],
    [folder(t, { smp: 300, cmdline: '' }), /presentCpus must be an integer 1\.\.256/],
    [folder(t, { smp: 1 }), /"cmdline" .* must be a string/],
    [folder(t, { smp: 1, cmdline: 'a\u0001b' }), /cmdline must be printable ASCII/],
    [folder(t, { smp: 1, cmdline: '' }, false), /boot_cpu_data\.bin: cannot read: no such file/],
  ];
  for (const [spec, re] of cases) {
    const r = resolveCpuModel(spec);
    t.false(r.ok, spec);
    if (!r.ok) t.regex(r.error, re, spec);
  }
});

test('model files are read bounded: an oversized reference.json and a short boot_cpu_data.bin are refused', (t) => {
  const big = folder(t, { smp: 1, cmdline: '' });
  writeFileSync(join(big, 'reference.json'), Buffer.alloc(MAX_REFERENCE_JSON_BYTES + 1, 0x20));
  const r1 = resolveCpuModel(big);
  t.false(r1.ok);
  if (!r1.ok) t.regex(r1.error, /reference\.json: 4194305 bytes is too large \(at most 4194304 bytes\)/);
  const short = folder(t, { smp: 1, cmdline: '' }, false);
  writeFileSync(join(short, 'boot_cpu_data.bin'), Buffer.alloc(100));
  const r2 = resolveCpuModel(short);
  t.false(r2.ok);
  if (!r2.ok) t.regex(r2.error, /boot_cpu_data is 100 bytes/);
  const dirAsFile = folder(t, { smp: 1, cmdline: '' }, false);
  mkdirSync(join(dirAsFile, 'boot_cpu_data.bin'));
  const r3 = resolveCpuModel(dirAsFile);
  t.false(r3.ok);
  if (!r3.ok) t.regex(r3.error, /boot_cpu_data\.bin.* is a directory, not a file/);
});

test('a model object is checked field by field', (t) => {
  const bad = resolveCpuModel({ ...DEFAULT_CPU_MODEL, vendor: 2 });
  t.false(bad.ok);
  if (!bad.ok) t.regex(bad.error, /vendor 2 is not the x86_vendor of "GenuineIntel" \(0\)/);
  const caps = resolveCpuModel({ ...DEFAULT_CPU_MODEL, capabilities: [1, 2, 3] });
  t.false(caps.ok);
  if (!caps.ok) t.regex(caps.error, /capabilities must be 24 unsigned 32-bit words/);
});
