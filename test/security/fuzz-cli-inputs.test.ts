/**
 * Fuzzing what the `heki` command is handed from outside (issue 15, classes 4 and 6): the
 * kind of each input file, the output paths, and the environment.
 *
 * Attack (or accident): any command that reads a file given a device, a FIFO with no writer,
 * a folder, a symlink loop, a huge sparse file, an empty file, random bytes, or a file whose
 * name is binary or very long; `heki run` given output paths that are folders, under /proc,
 * in a missing folder, devices, FIFOs, or the same file twice; `keygen --out` and `plugin new
 * --dir` given such folders; any value of HEKI_VERIFIER_TIMEOUT_MS.
 * Expected stop: an exit code in {0, 1, 2}, never a stack trace or an "internal error", and an
 * answer within the test's own ava timeout (a read of /dev/zero or a FIFO, or Node's mkdir
 * loop under /proc, would hang the test: that is the failure this catches, not a timed
 * assertion). Outputs naming one file are always exit 2; a malformed timeout always exit 2.
 */
import test from 'ava';
import fc from 'fast-check';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../cli/command.ts';
import { createRunCommand, type MachineFactory } from '../../cli/commands/run.ts';
import { ScriptedMachine } from '../../scenario/index.ts';
import { VERIFIER_TIMEOUT_ENV, verifierTimeoutMs } from '../../machine/verifier-timeout.ts';
import { heki, type CliRun } from '../helpers/cli.ts';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';

const dir = mkdtempSync(join(tmpdir(), 'heki-fuzz-cli-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

// The fixed inputs every property draws from: one of each file kind, good keys, a scenario.
execFileSync('mkfifo', [join(dir, 'fifo')]);
mkdirSync(join(dir, 'folder'));
symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'));
symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'));
writeFileSync(join(dir, 'huge'), '');
truncateSync(join(dir, 'huge'), 700 << 20);
writeFileSync(join(dir, 'empty'), '');
writeFileSync(join(dir, 's.yaml'), 'name: s\nkernel: real\nsteps:\n  - boot: {}\n');

/** No stack trace, no internal error, an exit code of the contract. */
function wellBehaved(r: CliRun, what: string): void {
  if (![0, 1, 2].includes(r.code)) throw new Error(`${what}: exit ${r.code}`);
  const text = `${r.out}\n${r.err}`;
  if (/internal error|\n\s+at .+:\d+:\d+\)?/.test(text)) throw new Error(`${what}: a stack trace or internal error:\n${text.slice(0, 2000)}`);
  if (r.err.length > 20_000) throw new Error(`${what}: ${r.err.length} characters on stderr (input echoed uncut?)`);
}

let keysMade: Promise<void> | undefined;
/** Key pairs of each role in `dir/keys` (made once). */
function keys(): Promise<void> {
  keysMade ??= (async () => {
    for (const [role, name] of [
      ['vmm', 'k'],
      ['module-signing', 'm'],
      ['kernel-vendor', 'v'],
    ] as const) {
      const r = await heki(['keygen', '--out', join(dir, 'keys'), '--role', role, '--name', name]);
      if (r.code !== 0) throw new Error(r.err);
    }
    copyFileSync(join(dir, 'keys', 'k.pub.json'), join(dir, 'good.pub.json'));
  })();
  return keysMade;
}

/** A file of some kind, made on demand for the generated ones; the path to hand over. */
type FileKind = { kind: 'fixed'; path: string } | { kind: 'bytes'; bytes: Uint8Array } | { kind: 'binary-name'; name: string; bytes: Uint8Array };

let made = 0;
function materialise(f: FileKind): string {
  if (f.kind === 'fixed') return f.path;
  if (f.kind === 'bytes') {
    const p = join(dir, `gen-${made++}`);
    writeFileSync(p, f.bytes);
    return p;
  }
  // A name with control bytes, quotes and non-ASCII; NUL and '/' cannot be in a file name.
  const safe = f.name.replace(/[\0/]/g, '_').slice(0, 200) || '_';
  const p = join(dir, `n-${made++}-${safe}`);
  try {
    writeFileSync(p, f.bytes);
  } catch {
    return join(dir, 'empty'); // a name the filesystem refuses (too long in bytes): another input
  }
  return p;
}

const fileKind: fc.Arbitrary<FileKind> = fc.oneof(
  fc.constantFrom<FileKind>(
    { kind: 'fixed', path: '/dev/zero' },
    { kind: 'fixed', path: '/dev/null' },
    { kind: 'fixed', path: join(dir, 'fifo') },
    { kind: 'fixed', path: join(dir, 'folder') },
    { kind: 'fixed', path: join(dir, 'loop-a') },
    { kind: 'fixed', path: join(dir, 'huge') },
    { kind: 'fixed', path: join(dir, 'empty') },
    { kind: 'fixed', path: join(dir, 'missing') },
    { kind: 'fixed', path: `${join(dir, 'x')}${'y'.repeat(300_000)}` },
  ),
  fc.record({ kind: fc.constant('bytes' as const), bytes: fc.uint8Array({ maxLength: 2048 }) }),
  fc.record({
    kind: fc.constant('binary-name' as const),
    name: fc.string({ unit: 'binary', minLength: 1, maxLength: 120 }),
    bytes: fc.uint8Array({ maxLength: 256 }),
  }),
);

/** Command lines with `X` where the file goes; none of them boots a machine. */
const READERS: readonly (readonly string[])[] = [
  ['verify-module', 'X'],
  ['verify-module', 'good.pub.json', '--pubkey', 'X'],
  ['verify-module', 'good.pub.json', '--cert', 'X'],
  ['verify-module', 'good.pub.json', '--revoked', 'X'],
  ['sign', 'X', '--key', 'keys/m.secret.json', '--out', 'o.ko'],
  ['sign', 'good.pub.json', '--key', 'X', '--out', 'o.ko'],
  ['restore', 'X', '--trust', 'keys/k.pub.json'],
  ['restore', 'good.pub.json', '--trust', 'X'],
  ['audit', 'verify', 'X'],
  ['replay', 'X'],
  ['replay', 'X', '--config', 'X'],
  ['run', 'X', '--check'],
  ['manifest', '--vmlinuz', 'X', '--system-map', 'X', '--key', 'keys/v.secret.json', '--out', 'o.json'],
];

test('input files of every kind: exit 0/1/2, no stack trace, no hang', async (t) => {
  await keys();
  const prop = fc.asyncProperty(fc.constantFrom(...READERS), fileKind, async (line, kind) => {
    const path = materialise(kind);
    const argv = line.map((a) => (a === 'X' ? path : a));
    wellBehaved(await heki(argv, dir), `heki ${argv.join(' ').slice(0, 200)}`);
  });
  await checkProperty(t, 'cli input files', prop, scaledRuns(80));
});

/** Where an output can be pointed. */
const outputPath = fc.constantFrom(
  '/proc/heki-out',
  '/proc/x/y/out',
  '/proc',
  '/sys/heki-out',
  '/dev/null',
  '/dev/zero',
  join(dir, 'fifo'),
  join(dir, 'folder'),
  join(dir, 'missing-folder', 'out'),
  join(dir, 'loop-a'),
  join(dir, 'same-out'),
  join(dir, 'fresh-out'),
  `${join(dir, 'long-')}${'z'.repeat(5000)}`,
);

/** `heki run s.yaml` with these flags on a scripted machine. */
async function runScripted(flags: readonly string[]): Promise<CliRun> {
  const factory: MachineFactory = () => Promise.resolve({ ok: true, value: new ScriptedMachine() });
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd: dir };
  const code = await createRunCommand(factory).run(['s.yaml', ...flags], io);
  return { code, out, err };
}

test('output paths (unwritable, folders, /proc, devices, one file twice): exit 0/1/2, two outputs on one file always exit 2', async (t) => {
  const flags = ['--audit', '--trace', '--report', '--record'] as const;
  const prop = fc.asyncProperty(
    fc.uniqueArray(fc.constantFrom(...flags), { minLength: 1, maxLength: 4 }),
    fc.array(outputPath, { minLength: 4, maxLength: 4 }),
    async (chosen, paths) => {
      const argv = chosen.flatMap((f, i) => [f, paths[i]!]);
      const r = await runScripted(argv);
      wellBehaved(r, `heki run s.yaml ${argv.join(' ').slice(0, 300)}`);
      const used = paths.slice(0, chosen.length);
      if (new Set(used).size < used.length && r.code !== 2) throw new Error(`two outputs on one file ran: ${argv.join(' ')} -> exit ${r.code}`);
      rmSync(join(dir, 'same-out'), { force: true, recursive: true });
      rmSync(join(dir, 'fresh-out'), { force: true, recursive: true });
    },
  );
  await checkProperty(t, 'run output paths', prop, scaledRuns(120));
});

test('output folders (keygen --out, plugin new --dir) and files (sign, manifest --out): exit 0/1/2, no spin under /proc, no block on a FIFO', async (t) => {
  const folderPath = fc.oneof(
    outputPath,
    fc.constantFrom('/proc/a/b/c', '/proc/self/heki', '/sys/kernel/heki', join(dir, 'empty', 'sub'), join(dir, 'kg', 'a', 'b')),
  );
  const lines: Record<string, (p: string) => string[]> = {
    keygen: (p) => ['keygen', '--out', p, '--force'],
    plugin: (p) => ['plugin', 'new', 'fuzzed', '--dir', p, '--force'],
    // Output files: a FIFO with no reader would block writeFileSync forever.
    sign: (p) => ['sign', 'good.pub.json', '--key', 'keys/m.secret.json', '--out', p],
    manifest: (p) => ['manifest', '--vmlinuz', 'empty', '--system-map', 'empty', '--key', 'keys/v.secret.json', '--out', p],
  };
  await keys();
  const prop = fc.asyncProperty(fc.constantFrom(...Object.keys(lines)), folderPath, async (cmd, path) => {
    const argv = lines[cmd]!(path);
    wellBehaved(await heki(argv, dir), `heki ${argv.join(' ').slice(0, 200)}`);
  });
  await checkProperty(t, 'output folders', prop, scaledRuns(60));
});

test.serial('HEKI_VERIFIER_TIMEOUT_MS: any value is accepted as a bounded number of ms or refused (exit 2) before the machine starts', async (t) => {
  const saved = process.env[VERIFIER_TIMEOUT_ENV];
  const value = fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.integer({ min: -1_000_000, max: 2_000_000 }).map(String),
    fc.constantFrom('', ' ', '0', '1', '600000', '600001', '1e3', '0x10', '+5', '5.0', '٣', '9'.repeat(400), `1${'\n'.repeat(3)}`),
  );
  try {
    const prop = fc.asyncProperty(value, async (v) => {
      if (v.includes('\0')) return; // the environment cannot hold a NUL
      process.env[VERIFIER_TIMEOUT_ENV] = v;
      const r = await runScripted([]);
      wellBehaved(r, `${VERIFIER_TIMEOUT_ENV}=${JSON.stringify(v).slice(0, 80)}`);
      const valid = verifierTimeoutMs(undefined).ok;
      if (valid !== (r.code !== 2)) throw new Error(`${JSON.stringify(v)}: valid=${valid} but exit ${r.code}`);
      if (!valid && !r.err.includes(VERIFIER_TIMEOUT_ENV)) throw new Error(`${JSON.stringify(v)}: the message does not name the variable: ${r.err}`);
    });
    await checkProperty(t, 'verifier timeout env', prop, scaledRuns(200));
  } finally {
    if (saved === undefined) delete process.env[VERIFIER_TIMEOUT_ENV];
    else process.env[VERIFIER_TIMEOUT_ENV] = saved;
  }
});
