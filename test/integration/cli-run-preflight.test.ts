/**
 * Issue 15, class 6: bad input to `heki run` is exit 2 before any machine starts.
 *
 * Attack (or accident): two outputs naming one file (each would overwrite the other), an
 * `--audit` / `--trace` / `--report` / `--record` path that cannot be written, a malformed
 * HEKI_VERIFIER_TIMEOUT_MS, a scenario file that is binary (NUL bytes) or not UTF-8, a
 * scenario naming malformed kernel files, a megabyte-long path echoed into the message.
 * Expected stop: exit 2 with the flag, the file and the problem named (the byte offset for a
 * bad scenario byte), the machine factory never called; messages cut to a readable length.
 * Before the fix: same-file outputs overwrote each other, a bad --audit path and a malformed
 * kernel file were exit 1 after the machine started, binary scenarios were parsed as YAML.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../cli/command.ts';
import { createRunCommand, type MachineFactory } from '../../cli/commands/run.ts';
import { ScriptedMachine } from '../../scenario/index.ts';
import { VERIFIER_TIMEOUT_ENV } from '../../machine/verifier-timeout.ts';
import { heki } from '../helpers/cli.ts';

const SCENARIO = 'name: p\nkernel: real\nsteps:\n  - boot: {}\n';

function folder(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-preflight-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 's.yaml'), SCENARIO);
  return dir;
}

/** `heki run argv` on a scripted machine; `started` counts machines built. */
async function run(argv: string[], cwd: string): Promise<{ code: number; out: string; err: string; started: number }> {
  let started = 0;
  const factory: MachineFactory = () => {
    started++;
    return Promise.resolve({ ok: true, value: new ScriptedMachine() });
  };
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd };
  const code = await createRunCommand(factory).run(argv, io);
  return { code, out, err, started };
}

test('two outputs naming the same file are refused before the machine starts', async (t) => {
  const dir = folder(t);
  const cases: [string[], RegExp][] = [
    [['--trace', 'x.out', '--report', 'x.out'], /--trace and --report name the same file .*x\.out.*; each would overwrite the other/],
    [['--record', 'x.out', '--audit', './x.out'], /--record and --audit name the same file/],
    [['--trace', 'x.out', '--report', join(dir, 'x.out')], /--trace and --report name the same file/],
  ];
  for (const [flags, re] of cases) {
    const r = await run(['s.yaml', ...flags], dir);
    t.is(r.code, 2, flags.join(' '));
    t.regex(r.err, re);
    t.is(r.started, 0, 'no machine started');
  }
});

test('an output or audit path that cannot be written is exit 2 before the machine starts', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'bad.log'), '{"seq":1,"time":"x","prev":"nope"}\n');
  const cases: [string[], RegExp][] = [
    [['--audit', '/proc/heki/audit.log'], /^heki run: --audit \/proc\/heki\/audit\.log: the folder \/proc\/heki does not exist/],
    [['--audit', '/proc/audit.log'], /--audit \/proc\/audit\.log: .*kernel pseudo-filesystem/],
    [['--audit', 'bad.log'], /--audit .*bad\.log: line 1: /],
    [['--audit', dir], /--audit .*: is a folder; name a file/],
    [['--trace', '/dev/zero'], /--trace \/dev\/zero: cannot write: exists and is not a regular file/],
    [['--report', 'no/such/dir/r.html'], /--report .*no\/such\/dir\/r\.html: cannot write: the folder .* does not exist/],
    [['--record', '/proc/r.jsonl'], /--record \/proc\/r\.jsonl: cannot write: .*kernel pseudo-filesystem/],
  ];
  for (const [flags, re] of cases) {
    const r = await run(['s.yaml', ...flags], dir);
    t.is(r.code, 2, `${flags.join(' ')}: ${r.err}`);
    t.regex(r.err, re);
    t.is(r.started, 0, 'no machine started');
  }
});

test('a run with --audit says where the verdicts went', async (t) => {
  const dir = folder(t);
  const r = await run(['s.yaml', '--audit', 'a.log'], dir);
  t.is(r.code, 0, r.err);
  t.regex(r.out, new RegExp(`audit: verdicts appended to ${join(dir, 'a.log')} \\(check it with 'heki audit verify `));
  const j = await run(['s.yaml', '--audit', 'a.log', '--json'], dir);
  t.notThrows(() => JSON.parse(j.out), 'stdout stays one JSON object');
  t.regex(j.err, /audit: verdicts appended to/);
});

// Serial (ava runs serial tests before the concurrent ones), and the variable restored in
// finally: the other tests of this file share the process environment.
test.serial('a malformed HEKI_VERIFIER_TIMEOUT_MS is exit 2 before anything runs, for every machine command', async (t) => {
  const dir = folder(t);
  const saved = process.env[VERIFIER_TIMEOUT_ENV];
  try {
    await malformedTimeouts(t, dir);
  } finally {
    if (saved === undefined) delete process.env[VERIFIER_TIMEOUT_ENV];
    else process.env[VERIFIER_TIMEOUT_ENV] = saved;
  }
});

async function malformedTimeouts(t: ExecutionContext, dir: string): Promise<void> {
  for (const bad of ['abc', '0', '-5', '1e3', '600001', 'x'.repeat(100_000)]) {
    process.env[VERIFIER_TIMEOUT_ENV] = bad;
    const r = await run(['s.yaml'], dir);
    t.is(r.code, 2);
    t.is(r.started, 0);
    t.regex(r.err, /HEKI_VERIFIER_TIMEOUT_MS must be a whole number of milliseconds between 1 and 600000/);
    t.true(r.err.length < 400, 'the value is cut in the message');
    for (const argv of [['attacks', 'write-kernel-text'], ['demo'], ['bench'], ['restore', 'x.snap', '--trust', 'k.pub.json']]) {
      const m = await heki(argv, dir);
      t.is(m.code, 2, argv.join(' '));
      t.regex(m.err, /HEKI_VERIFIER_TIMEOUT_MS must be/);
    }
  }
}

test('a scenario file with NUL bytes or invalid UTF-8 is refused, naming the byte offset', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'nul.yaml'), Buffer.concat([Buffer.from('name: x\n'), Buffer.from([0]), Buffer.from('steps: []\n')]));
  writeFileSync(join(dir, 'latin1.yaml'), Buffer.concat([Buffer.from('name: caf'), Buffer.from([0xe9]), Buffer.from('\nsteps:\n  - boot: {}\n')]));
  writeFileSync(join(dir, 'overlong.yaml'), Buffer.concat([Buffer.from('name: '), Buffer.from([0xc0, 0xaf]), Buffer.from('\n')]));
  for (const [file, re] of [
    ['nul.yaml', /^nul\.yaml: a NUL byte at byte 8: not a text file\n$/],
    ['latin1.yaml', /^latin1\.yaml: not valid UTF-8 at byte 9\n$/],
    ['overlong.yaml', /^overlong\.yaml: not valid UTF-8 at byte 6\n$/],
  ] as const) {
    const r = await run([file, '--check'], dir);
    t.is(r.code, 2, file);
    t.regex(r.err, re);
  }
});

test('megabyte-long names are cut in messages, control bytes escaped', async (t) => {
  const dir = folder(t);
  const long = `${'a'.repeat(1 << 20)}.yaml`;
  const r = await run([long], dir);
  t.is(r.code, 2);
  t.true(r.err.length < 1000, `message of ${r.err.length} characters`);
  t.regex(r.err, /…\(\d+ more\)/);
  const u = await heki([`\x1b]0;pwned\x07${'b'.repeat(5000)}`], dir);
  t.is(u.code, 2);
  t.false(u.err.includes('\x1b'), 'no raw escape sequence reaches the terminal');
  t.regex(u.err, /unknown command '\\x1b\]0;pwned\\x07b+…\(\d+ more\)'/);
});

test('a scenario naming malformed kernel files is exit 2 (bad input), not a machine failure', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'vmlinuz'), Buffer.alloc(4096, 0x41));
  writeFileSync(join(dir, 'System.map'), 'not a map\n');
  // Past the CLI's header check (test below): the machine's own loader must still say exit 2.
  const header = Buffer.alloc(4096, 0x41);
  header.writeUInt32LE(0x53726448, 0x202);
  header.writeUInt16LE(0x020f, 0x206);
  header[0x1f1] = 4; // setup sectors: the payload starts at 2560
  header.writeUInt32LE(0, 0x248);
  header.writeUInt32LE(100, 0x24c);
  writeFileSync(join(dir, 'vmlinuz'), header);
  writeFileSync(join(dir, 'System.map'), 'ffffffff81000000 T _stext\n');
  writeFileSync(join(dir, 'k.yaml'), 'name: k\nkernel: real\nvmlinuz: vmlinuz\nsystem-map: System.map\nsteps:\n  - boot: {}\n');
  let out = '';
  let err = '';
  const code = await createRunCommand().run(['k.yaml'], { out: (s) => void (out += s), err: (s) => void (err += s), cwd: dir });
  t.is(code, 2, err);
  t.regex(err, /^heki run: k\.yaml: cannot start the machine: .*vmlinuz: /);
  t.is(out, '', 'no table: nothing ran');
});

test('malformed kernel files named by a scenario (boot or kexec) are exit 2 with --check already: nothing is started', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'garbage'), Buffer.alloc(8192, 0x41));
  writeFileSync(join(dir, 'map'), 'ffffffff81000000 T _stext\n');
  writeFileSync(join(dir, 'binary.map'), Buffer.from([0x66, 0, 0x66]));
  const cases: [string, RegExp][] = [
    ['vmlinuz: garbage\nsystem-map: map\n', /'vmlinuz' .*garbage: not a bzImage: bzImage: bad magic: no "HdrS" setup header at 0x202/],
    ['vmlinuz: /dev/zero\nsystem-map: map\n', /'vmlinuz' \/dev\/zero: is a character device, not a regular file/],
    ['vmlinuz: garbage\nsystem-map: garbage\n', /'vmlinuz' .*garbage: not a bzImage/],
  ];
  for (const [top, re] of cases) {
    writeFileSync(join(dir, 'k.yaml'), `name: k\nkernel: real\n${top}steps:\n  - boot: {}\n`);
    const r = await run(['k.yaml', '--check'], dir);
    t.is(r.code, 2, top);
    t.regex(r.err, re);
  }
  writeFileSync(join(dir, 'x.yaml'), 'name: x\nkernel: real\nsteps:\n  - boot: {}\n  - kexec: { image: garbage }\n');
  const k = await run(['x.yaml', '--check'], dir);
  t.is(k.code, 2);
  t.regex(k.err, /step 2 \(kexec\): 'image' .*garbage: not a bzImage/);
  writeFileSync(join(dir, 'y.yaml'), 'name: y\nkernel: real\nsteps:\n  - boot: {}\n  - kexec: { system-map: binary.map }\n');
  const m = await run(['y.yaml', '--check'], dir);
  t.is(m.code, 2);
  t.regex(m.err, /step 2 \(kexec\): 'system-map' .*binary\.map: a NUL byte at byte 1: not a text file/);
});
