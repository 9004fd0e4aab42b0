/**
 * `heki reference check` on the three shipped reference boots: the simulated guest's kernel
 * text equals the real kernel's, byte for byte, once the static keys the real kernel's init
 * code set are set through the authenticated jump-label path; every dumped section of every
 * module the real boot loaded is compared at the address the real kernel loaded it; a module
 * that failed in the real boot is skipped and named. Malformed folders are exit 2, fast,
 * naming the file.
 *
 * Not one byte differs, kernel or module: the guest frees each module's init layout once its
 * init returned (do_init_module()), so the next module's core lands in that memory as in the
 * real boot, and every `__mcount_loc` entry, init-text sites included, holds the real address.
 */
import test, { type ExecutionContext } from 'ava';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { heki } from '../helpers/cli.ts';
import { fixtureDir, haveFixtures, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);
// Serial: each boots its own machine; three at once on a loaded host only risks timeouts.
const bootTest = haveFixtures ? test.serial : test.serial.skip;

/** The shipped models. */
const MODELS = ['qemu64-up', 'skylake-smp2', 'epyc-smp2'] as const;

interface Comparison {
  bytes: number;
  differing: number;
  first: Array<{ addr: string; owner: string }>;
}
interface Report {
  model: string;
  kernel: Record<string, Comparison>;
  modules: Record<string, Record<string, Comparison>>;
  runtime: { staticKeys: number; staticCalls: number; problems: string[] };
  skipped: Array<{ module: string; reason: string }>;
  errors: Array<{ module: string; reason: string }>;
  differing: number;
}

const refDir = (name: string): string => join(fixtureDir, 'reference', name);

for (const name of MODELS) {
  bootTest(`${name}: the kernel text and every dumped module section equal the real boot's`, async (t) => {
    const r = await heki(['reference', 'check', name, '--json']);
    t.is(r.err, '');
    const j = JSON.parse(r.out) as Report;
    const ref = JSON.parse(readFileSync(join(refDir(name), 'reference.json'), 'utf8')) as {
      kernel_text: { size: number };
      dumped: Record<string, Record<string, { size: number }>>;
    };
    t.is(j.model, name);
    t.deepEqual(j.kernel['.text'], { bytes: ref.kernel_text.size, differing: 0, first: [] }, 'not one byte of the kernel text differs');
    t.true(j.runtime.staticKeys > 0, 'the keys the real init code enabled were set through the jump-label path');
    t.deepEqual(j.runtime.problems, []);
    t.deepEqual(j.skipped, [{ module: 'kvm-intel', reason: 'failed in the real boot' }]);
    t.deepEqual(j.errors, [], 'every module the real boot loaded loads at its real addresses');
    // Every dumped section is reported, with its size.
    t.deepEqual(Object.keys(j.modules).sort(), Object.keys(ref.dumped).sort());
    for (const [mod, secs] of Object.entries(ref.dumped)) {
      t.deepEqual(Object.keys(j.modules[mod]!).sort(), Object.keys(secs).sort(), mod);
      for (const [sec, d] of Object.entries(secs)) {
        t.deepEqual(j.modules[mod]![sec], { bytes: d.size, differing: 0, first: [] }, `${mod} ${sec} holds the real kernel's bytes`);
      }
    }
    t.is(j.differing, 0);
    t.is(r.code, 0, 'exit 0: nothing differs');
  });
}

/** A copy of the skylake-smp2 folder, minus its text dump (each test writes its own). */
function folderCopy(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-ref-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['reference.json', 'boot_cpu_data.bin']) copyFileSync(join(refDir('skylake-smp2'), f), join(dir, f));
  mkdirSync(join(dir, 'modules'));
  return dir;
}

async function malformed(t: ExecutionContext, dir: string, names: RegExp): Promise<void> {
  const r = await heki(['reference', 'check', dir, '--json']);
  t.is(r.code, 2, r.err);
  t.is(r.out, '');
  t.regex(r.err, names);
  t.notRegex(r.err, /\n\s+at /, 'no stack trace');
}

fixtureTest('malformed folders are exit 2, naming the file', async (t) => {
  const missing = folderCopy(t);
  rmSync(join(missing, 'reference.json'));
  await malformed(t, missing, /reference\.json/);

  const bad = folderCopy(t);
  writeFileSync(join(bad, 'reference.json'), '{"smp": 2, "cmdline": ');
  await malformed(t, bad, /reference\.json: not JSON/);

  // A raw text dump one byte short of what reference.json says.
  const short = folderCopy(t);
  const j = JSON.parse(readFileSync(join(short, 'reference.json'), 'utf8')) as { kernel_text: { file: string; size: number } };
  j.kernel_text.file = 'vmlinux.text.bin';
  writeFileSync(join(short, 'reference.json'), JSON.stringify(j));
  writeFileSync(join(short, 'vmlinux.text.bin'), new Uint8Array(j.kernel_text.size - 1));
  await malformed(t, short, /vmlinux\.text\.bin holds \d+ bytes; reference\.json says \d+/);

  // reference.json as a FIFO (no writer: a blocking open would hang), a device, a folder.
  const fifo = folderCopy(t);
  rmSync(join(fifo, 'reference.json'));
  execFileSync('mkfifo', [join(fifo, 'reference.json')]);
  await malformed(t, fifo, /reference\.json.* is a FIFO \(named pipe\), not a regular file/);
  await malformed(t, '/dev/zero', /\/dev\/zero: not a folder/);
  const folder = folderCopy(t);
  rmSync(join(folder, 'reference.json'));
  mkdirSync(join(folder, 'reference.json'));
  await malformed(t, folder, /reference\.json.* is a directory, not a file/);
  const text = folderCopy(t);
  writeFileSync(join(text, 'reference.json'), JSON.stringify({ ...j, kernel_text: { ...j.kernel_text, file: 'zero' } }));
  execFileSync('ln', ['-s', '/dev/zero', join(text, 'zero')]);
  await malformed(t, text, /zero.* is a character device, not a regular file/);
});

fixtureTest('a folder whose section addresses are not a dump of the module files is exit 2, named', async (t) => {
  const dir = folderCopy(t);
  const j = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as {
    kernel_text: { file: string };
    sections: Record<string, Record<string, string>>;
    dumped: Record<string, unknown>;
  };
  symlinkSync(join(refDir('skylake-smp2'), j.kernel_text.file), join(dir, j.kernel_text.file));
  delete j.sections['crc7']!['.text'];
  j.dumped = {};
  writeFileSync(join(dir, 'reference.json'), JSON.stringify(j));
  const r = await heki(['reference', 'check', dir]);
  t.is(r.code, 2, r.err);
  t.regex(r.err, /reference\.json: sections\.crc7 has no address for \.text/);
});

fixtureTest("a text dump that is not this kernel's _stext.._etext is exit 2, named", async (t) => {
  const dir = folderCopy(t);
  const j = JSON.parse(readFileSync(join(dir, 'reference.json'), 'utf8')) as { kernel_text: { file: string; size: number }; dumped: Record<string, unknown> };
  j.kernel_text = { ...j.kernel_text, file: 'vmlinux.text.bin', size: 4096 };
  j.dumped = {};
  writeFileSync(join(dir, 'reference.json'), JSON.stringify(j));
  writeFileSync(join(dir, 'vmlinux.text.bin'), new Uint8Array(4096));
  const r = await heki(['reference', 'check', dir]);
  t.is(r.code, 2, r.err);
  t.regex(r.err, /reference\.json: kernel_text is 4096 bytes at 0xffffffff81000000; this kernel's _stext.._etext is 14687538 bytes/);
});

fixtureTest('a module the folder lists and the modules folder lacks is exit 2, named', async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'heki-mods-'));
  t.teardown(() => rmSync(empty, { recursive: true, force: true }));
  const r = await heki(['reference', 'check', 'skylake-smp2', '--modules', empty]);
  t.is(r.code, 2);
  t.regex(r.err, /crc7\.ko: cannot read: no such file/);
});

test('usage errors are exit 2 with the usage', async (t) => {
  for (const argv of [
    ['reference'],
    ['reference', 'verify', 'x'],
    ['reference', 'check'],
    ['reference', 'check', 'a', 'b'],
    ['reference', 'check', 'a', '--bogus'],
  ]) {
    const r = await heki(argv);
    t.is(r.code, 2, argv.join(' '));
    t.regex(r.err, /usage: heki reference check/);
  }
  const h = await heki(['reference', '--help']);
  t.is(h.code, 0);
  t.regex(h.out, /--modules <dir>/);
});
