/**
 * `heki run` through its CliCommand, with a scripted machine injected in place of the real
 * one: exit codes 0/1/2, the exact JSON scripts parse, the readable table, messages that
 * name the file and line, key and kernel files checked before any machine starts, and the
 * machine always disposed.
 */
import test from 'ava';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../cli/command.ts';
import { main } from '../../cli/main.ts';
import { createRunCommand, type MachineFactory } from '../../cli/commands/run.ts';
import { keygenCommand } from '../../cli/commands/keygen.ts';
import { ScriptedMachine, type ScriptedMachineOptions } from '../../scenario/index.ts';
import type { StepOutcome } from '../../machine/machine-api.ts';

interface Run {
  code: number;
  out: string;
  err: string;
}

type ExecutionLike = { teardown(f: () => void): void };

/** A temp folder holding `files`. */
function folder(t: ExecutionLike, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-run-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

/**
 * The smallest file that passes the CLI's bzImage check (a "HdrS" setup header at 0x202,
 * boot protocol 2.15, an empty payload): the scripted machine never decompresses it.
 */
function fakeBzImage(): Buffer {
  const b = Buffer.alloc(4096);
  b.writeUInt32LE(0x53726448, 0x202);
  b.writeUInt16LE(0x020f, 0x206);
  return b;
}

/** A factory that records its configs and hands out scripted machines. */
function scripted(options: ScriptedMachineOptions = {}): { factory: MachineFactory; machines: ScriptedMachine[]; configs: unknown[] } {
  const machines: ScriptedMachine[] = [];
  const configs: unknown[] = [];
  const factory: MachineFactory = (config) => {
    configs.push(config);
    const m = new ScriptedMachine(options);
    machines.push(m);
    return Promise.resolve({ ok: true, value: m });
  };
  return { factory, machines, configs };
}

/** Stands for "the command's own factory" in {@link run}. */
const createRunCommandDefaultFactory = Symbol('default factory');

async function run(factory: MachineFactory | typeof createRunCommandDefaultFactory, argv: string[], cwd: string): Promise<Run> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd };
  const cmd = factory === createRunCommandDefaultFactory ? createRunCommand() : createRunCommand(factory);
  const code = await cmd.run(argv, io);
  return { code, out, err };
}

/** Denies writes, exec and CR/MSR writes; allows the rest. */
const guarded = (c: { method: string }): StepOutcome =>
  ['write', 'exec', 'writeCr', 'writeMsr', 'setMemory'].includes(c.method)
    ? { outcome: 'denied', reason: `${c.method}: stopped by the EPT` }
    : { outcome: 'allowed', reason: `${c.method}: done` };

const GOOD = `name: good
kernel: real
steps:
  - boot: {}
  - load-module: { path: mods/m.ko, expect: allowed }
  - ftrace: { enable: all, expect: allowed }
  - write: { addr: "_stext+0x10", bytes: "90", mode: kernel, expect: denied }
  - write-cr: { cr: 4, clear: [SMEP], expect: denied }
`;

test('every expectation holds: exit 0, a table and a PASSED summary', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const s = scripted({ answer: guarded });
  const r = await run(s.factory, ['good.yaml'], dir);
  t.is(r.code, 0, r.err);
  t.is(r.err, '');
  const lines = r.out.trimEnd().split('\n');
  t.is(lines[0], `scenario 'good' (good.yaml): 5 steps, kernel real`);
  t.regex(lines[1]!, /^\s+#\s+op\s+outcome\s+expected\s+ok\s+reason$/);
  t.regex(lines[2]!, /^\s+1\s+boot\s+allowed\s+-\s+ok\s+boot: done$/);
  t.regex(lines[5]!, /^\s+4\s+write\s+denied\s+denied\s+ok\s+write: stopped by the EPT$/);
  t.is(lines[7], 'good: PASSED: all 5 steps held (4 expectations checked)');
  t.is(s.machines[0]!.disposed, 1);
});

test('--json prints exactly one object with the contract shape', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const r = await run(scripted({ answer: guarded }).factory, ['good.yaml', '--json'], dir);
  t.is(r.code, 0);
  t.is(r.out.split('\n').filter((l) => l !== '').length, 1);
  t.true(r.out.endsWith('}\n'));
  const j = JSON.parse(r.out) as { name: string; passed: boolean; steps: Array<Record<string, unknown>> };
  t.deepEqual(Object.keys(j), ['name', 'passed', 'steps']);
  t.is(j.name, 'good');
  t.true(j.passed);
  t.deepEqual(j.steps[0], { index: 1, op: 'boot', outcome: 'allowed', reason: 'boot: done', expected: null, ok: true });
  t.deepEqual(j.steps[3], { index: 4, op: 'write', outcome: 'denied', reason: 'write: stopped by the EPT', expected: 'denied', ok: true });
  t.deepEqual(
    j.steps.map((s) => Object.keys(s)),
    j.steps.map(() => ['index', 'op', 'outcome', 'reason', 'expected', 'ok']),
  );
});

test('a failed expectation: exit 1, FAIL in the table, the step named in the summary', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const s = scripted(); // allows everything: the write and the CR write are not stopped
  const r = await run(s.factory, ['good.yaml'], dir);
  t.is(r.code, 1);
  t.regex(r.out, /\n\s+4\s+write\s+allowed\s+denied\s+FAIL\s+write: done\n/);
  t.regex(r.out, /good: FAILED: 2 of 5 steps did not hold: 4 \(write\), 5 \(write-cr\)\n$/);
  t.is(s.machines[0]!.disposed, 1);
  const j = await run(s.factory, ['good.yaml', '--json'], dir);
  t.is(j.code, 1);
  const o = JSON.parse(j.out) as { passed: boolean; steps: Array<{ ok: boolean }> };
  t.false(o.passed);
  t.deepEqual(
    o.steps.map((x) => x.ok),
    [true, true, true, false, false],
  );
});

test('an error outcome fails its step (an unknown symbol), even without expect', async (t) => {
  const dir = folder(t, { 's.yaml': 'name: e\nsteps:\n  - boot: {}\n  - exec: { addr: no_such_symbol }\n' });
  const r = await run(scripted().factory, ['s.yaml', '--json'], dir);
  t.is(r.code, 1);
  const o = JSON.parse(r.out) as { steps: Array<{ outcome: string; reason: string; expected: unknown; ok: boolean }> };
  t.deepEqual(o.steps[1], {
    index: 2,
    op: 'exec',
    outcome: 'error',
    reason: `cannot resolve 'no_such_symbol': unknown symbol 'no_such_symbol'`,
    expected: null,
    ok: false,
  } as never);
});

test('a malformed scenario: exit 2, file and line named, no machine started', async (t) => {
  const dir = folder(t, {
    'bad.yaml':
      'name: x\nkernel: real\nsteps:\n  - boot: {}\n  - load-module: { path: some.ko }\n  # comment\n  - write: { addr: "_stext+0x10", bytes: "90", mode: supervisor, expect: denied }\n',
  });
  const s = scripted();
  for (const argv of [['bad.yaml'], ['bad.yaml', '--json'], ['bad.yaml', '--check']]) {
    const r = await run(s.factory, argv, dir);
    t.is(r.code, 2);
    t.is(r.out, '');
    t.is(r.err, `bad.yaml:7: step 3 (write): 'mode' must be kernel or user\n`);
  }
  t.is(s.machines.length, 0);
});

test('a YAML syntax error and a missing file are exit 2', async (t) => {
  const dir = folder(t, { 'syntax.yaml': 'name: x\nsteps: [\n' });
  const a = await run(scripted().factory, ['syntax.yaml'], dir);
  t.is(a.code, 2);
  t.regex(a.err, /^syntax\.yaml:2: YAML syntax error: /);
  const b = await run(scripted().factory, ['nope.yaml'], dir);
  t.is(b.code, 2);
  t.regex(b.err, /^nope\.yaml: cannot read: no such file/);
  const c = await run(scripted().factory, ['.'], dir);
  t.is(c.code, 2);
  t.is(c.err, '.: is a directory, not a file\n');
});

test('bad usage is exit 2 with the usage text', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const cases: Array<[string[], RegExp]> = [
    [[], /missing <scenario\.yaml>/],
    [['a.yaml', 'b.yaml'], /unexpected argument 'b\.yaml'/],
    [['good.yaml', '--frob'], /--frob/],
    [['good.yaml', '--check', '--json'], /--check and --json cannot be combined/],
    [['good.yaml', '--step-timeout', 'soon'], /--step-timeout must be a number of seconds/],
    [['good.yaml', '--step-timeout', '0'], /--step-timeout must be a number of seconds/],
  ];
  for (const [argv, re] of cases) {
    const r = await run(scripted().factory, argv, dir);
    t.is(r.code, 2, argv.join(' '));
    t.regex(r.err, re);
    t.regex(r.err, /usage: heki run <scenario\.yaml>/);
    t.is(r.out, '');
  }
});

test('key files are checked first: unreadable or malformed is exit 2 naming the file', async (t) => {
  const dir = folder(t, {
    'missing.yaml': 'name: k\nkeys: { certs: [certs/none.der] }\nsteps: [ {boot: {}} ]\n',
    'bad.yaml': 'name: k\nkeys: { pubkeys: [bad.pub.json] }\nsteps: [ {boot: {}} ]\n',
    'bad.pub.json': '{"not": "a key"}',
  });
  const s = scripted();
  const a = await run(s.factory, ['missing.yaml'], dir);
  t.is(a.code, 2);
  t.true(a.err.startsWith(`heki run: missing.yaml: key file ${join(dir, 'certs/none.der')}: cannot read`), a.err);
  const b = await run(s.factory, ['bad.yaml'], dir);
  t.is(b.code, 2);
  t.true(b.err.includes(join(dir, 'bad.pub.json')), b.err);
  t.is(s.machines.length, 0);
});

test('good key files pass, and the machine gets absolute paths resolved from the scenario folder', async (t) => {
  const dir = folder(t, { 'sub/s.yaml': 'name: k\nkeys: { pubkeys: [../keys/heki-signing-key.pub.json] }\nsteps: [ {boot: {}} ]\n' });
  const k = await keygenCommand.run(['--out', 'keys'], { out: () => {}, err: () => {}, cwd: dir });
  t.is(k, 0);
  const s = scripted();
  const r = await run(s.factory, ['sub/s.yaml'], dir);
  t.is(r.code, 0, r.err);
  t.deepEqual(s.configs, [{ kernel: 'real', keys: { pubkeys: [join(dir, 'keys/heki-signing-key.pub.json')], certs: [], revoked: [] } }]);
});

test('kernel files named by the scenario must be readable (exit 2); they reach the machine config', async (t) => {
  const dir = folder(t, {
    'missing.yaml': 'name: v\nvmlinuz: k/vmlinuz\nsteps: [ {boot: {}} ]\n',
    'ok.yaml': 'name: v\nvmlinuz: k/vmlinuz.real\nsystem-map: k/System.map\nsteps: [ {boot: {}} ]\n',
    'k/System.map': 'ffffffff81000000 T _stext\n',
    'synthetic.yaml': 'name: s\nkernel: synthetic\nsteps: [ {boot: {}} ]\n',
  });
  writeFileSync(join(dir, 'k/vmlinuz.real'), fakeBzImage());
  const s = scripted();
  const a = await run(s.factory, ['missing.yaml'], dir);
  t.is(a.code, 2);
  t.regex(a.err, new RegExp(`^heki run: missing\\.yaml: 'vmlinuz' ${join(dir, 'k/vmlinuz').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: cannot read`));
  t.is(s.machines.length, 0);
  t.is((await run(s.factory, ['ok.yaml'], dir)).code, 0);
  t.is((await run(s.factory, ['synthetic.yaml'], dir)).code, 0);
  t.deepEqual(s.configs, [
    { kernel: 'real', vmlinuz: join(dir, 'k/vmlinuz.real'), systemMap: join(dir, 'k/System.map'), keys: { pubkeys: [], certs: [], revoked: [] } },
    { kernel: 'synthetic', keys: { pubkeys: [], certs: [], revoked: [] } },
  ]);
});

test.serial('kernel: real without kernel files: exit 2, saying where the fixtures were looked for', async (t) => {
  const dir = folder(t, { 's.yaml': 'name: f\nkernel: real\nvmlinuz: vmlinuz\nsteps: [ {boot: {}} ]\n' });
  writeFileSync(join(dir, 'vmlinuz'), fakeBzImage());
  const before = process.env['HEKI_FIXTURES'];
  process.env['HEKI_FIXTURES'] = join(dir, 'no-fixtures');
  try {
    const r = await run(createRunCommandDefaultFactory, ['s.yaml', '--json'], dir);
    t.is(r.code, 2);
    t.is(r.out, '');
    t.is(
      r.err,
      `heki run: s.yaml: cannot start the machine: kernel files not found: looked for ${join(dir, 'no-fixtures', 'System.map')} (the fixtures folder is ${join(dir, 'no-fixtures')}: set HEKI_FIXTURES, or name vmlinuz and system-map in the scenario)\n`,
    );
  } finally {
    if (before === undefined) delete process.env['HEKI_FIXTURES'];
    else process.env['HEKI_FIXTURES'] = before;
  }
});

test('a machine that fails on bad input is exit 2; one that cannot start is exit 1', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const r = await run(() => Promise.resolve({ ok: false, error: { kind: 'input', message: 'bad image' } }), ['good.yaml'], dir);
  t.is(r.code, 2);
  t.is(r.err, 'heki run: good.yaml: cannot start the machine: bad image\n');
  const s = await run(() => Promise.resolve({ ok: false, error: { kind: 'start', message: 'worker died' } }), ['good.yaml'], dir);
  t.is(s.code, 1);
});

test('a machine that cannot start is exit 1 with its message (also when the factory throws)', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const msg = 'kernel fixtures not found: looked for vmlinuz and System.map in /nowhere/linux-6.1.0-56-amd64';
  const a = await run(() => Promise.resolve({ ok: false, error: msg }), ['good.yaml', '--json'], dir);
  t.is(a.code, 1);
  t.is(a.out, '');
  t.is(a.err, `heki run: good.yaml: cannot start the machine: ${msg}\n`);
  const b = await run(() => Promise.reject(new Error('worker spawn failed')), ['good.yaml'], dir);
  t.is(b.code, 1);
  t.is(b.err, 'heki run: good.yaml: cannot start the machine: worker spawn failed\n');
});

test('--check validates without starting a machine', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const s = scripted();
  const r = await run(s.factory, ['good.yaml', '--check'], dir);
  t.is(r.code, 0);
  t.is(r.out, `good.yaml: ok: scenario 'good', 5 steps\n`);
  t.is(s.machines.length, 0);
});

test('--step-timeout bounds a hanging step: exit 1, the rest not run, machine disposed', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const s = scripted({ answer: (c) => (c.method === 'ftrace' ? new Promise<StepOutcome>(() => {}) : guarded(c)) });
  const r = await run(s.factory, ['good.yaml', '--json', '--step-timeout', '0.05'], dir);
  t.is(r.code, 1);
  const o = JSON.parse(r.out) as { steps: Array<{ outcome: string; reason: string }> };
  t.deepEqual(
    o.steps.map((x) => x.outcome),
    ['allowed', 'allowed', 'error', 'error', 'error'],
  );
  t.is(o.steps[2]!.reason, 'machine.ftrace() did not finish within 0.05 s');
  t.is(s.machines[0]!.disposed, 1);
});

test('a dispose failure is a warning on stderr; the exit code follows the expectations', async (t) => {
  const dir = folder(t, { 'good.yaml': GOOD });
  const s = scripted({ answer: guarded, onDispose: () => Promise.reject(new Error('worker did not stop')) });
  const r = await run(s.factory, ['good.yaml', '--json'], dir);
  t.is(r.code, 0);
  t.is(r.err, 'heki run: warning: machine.dispose() threw Error: worker did not stop\n');
  t.true((JSON.parse(r.out) as { passed: boolean }).passed);
});

test('heki run is registered: listed in --help, its own --help, usage errors through main', async (t) => {
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd: process.cwd() };
  t.is(await main(['--help'], io), 0);
  t.regex(out, /^\s+run\s+run a scenario file/m);
  out = '';
  t.is(await main(['run', '--help'], io), 0);
  t.regex(out, /^usage: heki run <scenario\.yaml>/);
  t.is(await main(['run'], io), 2);
  t.regex(err, /missing <scenario\.yaml>/);
  out = '';
  t.is(await main(['run', 'scenarios/demo.yaml', '--check'], io), 0);
  t.regex(out, /^scenarios\/demo\.yaml: ok: scenario 'demo', \d+ steps\n$/);
});
