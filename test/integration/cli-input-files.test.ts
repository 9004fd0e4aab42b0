/**
 * Issue 15, class 4: every command that reads a user-named file refuses one that is not a
 * regular file of bounded size, before reading it, and refuses an output folder that cannot
 * be created.
 *
 * Attack (or accident): a path naming /dev/zero, a FIFO with no writer, a folder, a symlink
 * loop or a huge sparse file, handed to verify-module, sign, restore, audit verify, replay,
 * run, snapshot, manifest and each key-file flag; `keygen --out /proc/x` and
 * `plugin new --dir /proc/x`.
 * Expected stop: exit 2 with a message naming the file and the problem (device, FIFO, folder,
 * symlink loop, too large; a folder that cannot be created), returned at once. Before the fix,
 * /dev/zero and the FIFO were read forever and the /proc folders made Node's recursive mkdir
 * spin: these tests hung until ava's timeout.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { heki } from '../helpers/cli.ts';

/** A folder holding one input of every bad kind, and a good key pair for the other flags. */
async function badInputs(t: { teardown(f: () => void): void }): Promise<{ dir: string; kinds: Record<string, [string, RegExp]> }> {
  const dir = mkdtempSync(join(tmpdir(), 'heki-input-kinds-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  execFileSync('mkfifo', [join(dir, 'fifo')]);
  mkdirSync(join(dir, 'folder'));
  symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'));
  symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'));
  writeFileSync(join(dir, 'huge'), '');
  truncateSync(join(dir, 'huge'), 600 << 20); // sparse: no disk used, st_size past every bound
  for (const [role, name] of [
    ['vmm', 'k'],
    ['module-signing', 'm'],
    ['kernel-vendor', 'v'],
  ]) {
    const keys = await heki(['keygen', '--out', join(dir, 'keys'), '--role', role!, '--name', name!]);
    if (keys.code !== 0) throw new Error(keys.err);
  }
  return {
    dir,
    kinds: {
      device: ['/dev/zero', /\/dev\/zero: is a character device, not a regular file/],
      fifo: [join(dir, 'fifo'), /fifo: is a FIFO \(named pipe\), not a regular file/],
      folder: [join(dir, 'folder'), /folder: is a directory, not a file/],
      loop: [join(dir, 'loop-a'), /loop-a: cannot read: too many levels of symbolic links/],
      huge: [join(dir, 'huge'), /huge: \d+ bytes is too large \(at most \d+ bytes\)/],
    },
  };
}

/** Each command line with `X` where the bad file goes. */
const COMMAND_LINES: readonly (readonly string[])[] = [
  ['verify-module', 'X'],
  ['verify-module', 'keys/k.pub.json', '--pubkey', 'X'],
  ['verify-module', 'keys/k.pub.json', '--cert', 'X'],
  ['verify-module', 'keys/k.pub.json', '--revoked', 'X'],
  ['sign', 'X', '--key', 'keys/m.secret.json', '--out', 'o.ko'],
  ['sign', 'keys/k.pub.json', '--key', 'X', '--out', 'o.ko'],
  ['restore', 'X', '--trust', 'keys/k.pub.json'],
  ['restore', 'keys/k.pub.json', '--trust', 'X'],
  ['audit', 'verify', 'X'],
  ['replay', 'X'],
  ['run', 'X'],
  ['run', 'X', '--check'],
  ['snapshot', 'X', '--out', 'o.snap'],
  ['manifest', '--vmlinuz', 'X', '--system-map', 'X', '--key', 'keys/v.secret.json', '--out', 'o.json'],
];

test('every command refuses a device, a FIFO, a folder, a symlink loop and a too-large file: exit 2, the file and the problem named', async (t) => {
  const { dir, kinds } = await badInputs(t);
  for (const line of COMMAND_LINES) {
    for (const [kind, [path, problem]] of Object.entries(kinds)) {
      const argv = line.map((a) => (a === 'X' ? path : a));
      const r = await heki(argv, dir);
      const what = `heki ${argv.join(' ')} (${kind})`;
      t.is(r.code, 2, `${what}: ${r.err}`);
      t.regex(r.err, problem, what);
      t.notRegex(r.err, /\n\s+at /, `${what}: no stack trace`);
    }
  }
});

test('a scenario whose key file is /dev/zero is refused before any machine starts', async (t) => {
  const { dir } = await badInputs(t);
  writeFileSync(join(dir, 's.yaml'), 'name: s\nkeys:\n  pubkeys: [/dev/zero]\nsteps:\n  - boot: {}\n');
  const r = await heki(['run', 's.yaml', '--check'], dir);
  t.is(r.code, 2);
  t.regex(r.err, /key file \/dev\/zero: is a character device, not a regular file/);
});

test('keygen --out and plugin new --dir under /proc: exit 2 at once, naming the folder that cannot be created', async (t) => {
  const { dir } = await badInputs(t);
  const k = await heki(['keygen', '--out', '/proc/heki-no-such/keys'], dir);
  t.is(k.code, 2);
  t.regex(k.err, /^heki keygen: \/proc\/heki-no-such\/keys: cannot create the folder \/proc\/heki-no-such: \/proc accepts no new folders/);
  const p = await heki(['plugin', 'new', 'p', '--dir', '/proc/heki-no-such'], dir);
  t.is(p.code, 2);
  t.regex(p.err, /^heki plugin new: \/proc\/heki-no-such: cannot create the folder/);
  writeFileSync(join(dir, 'file'), 'x');
  const f = await heki(['keygen', '--out', join(dir, 'file', 'sub')], dir);
  t.is(f.code, 2);
  t.regex(f.err, /file: exists and is not a folder/);
  const ok = await heki(['keygen', '--out', join(dir, 'a', 'b', 'c')], dir);
  t.is(ok.code, 0, 'missing parents are still created, one by one');
});
