/**
 * `heki attacks` through its CliCommand: the exact --json shape on real attacks, the table,
 * exit 1 when an attack is not stopped (a scripted runner), exit 2 for an unknown attack name
 * (named) and for missing fixtures (where they were looked for), and --list.
 */
import test from 'ava';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { CliIo } from '../../cli/command.ts';
import { main } from '../../cli/main.ts';
import { createAttacksCommand } from '../../cli/commands/attacks.ts';
import { listAttacks, type AttacksRun } from '../../checks/attacks.ts';
import { needsFixtures } from '../helpers/fixtures.ts';
import type { Result } from '../../shared/result.ts';

interface Run {
  code: number;
  out: string;
  err: string;
}

function io(): { io: CliIo; run: () => Omit<Run, 'code'> } {
  let out = '';
  let err = '';
  return { io: { out: (s) => (out += s), err: (s) => (err += s), cwd: process.cwd() }, run: () => ({ out, err }) };
}

async function heki(argv: string[]): Promise<Run> {
  const b = io();
  const code = await main(argv, b.io);
  return { code, ...b.run() };
}

needsFixtures(test)('--json on two attacks: the exact shape, both stopped, exit 0', async (t) => {
  const r = await heki(['attacks', 'clear-cr0-wp', 'overwrite-lstar', '--json']);
  t.is(r.code, 0, r.err);
  t.regex(r.err, /^heki attacks: 1\/2 done \([\w-]+: stopped\)\nheki attacks: 2\/2 done \([\w-]+: stopped\)\n$/, 'progress on stderr only');
  const j = JSON.parse(r.out) as { attacks: Array<Record<string, unknown>>; total: number; stopped: number };
  t.deepEqual(Object.keys(j), ['attacks', 'total', 'stopped', 'notApplicable', 'cpu', 'hypervisor']);
  t.is(j.total, 2);
  t.is(j.stopped, 2);
  t.like(j, { notApplicable: 0, cpu: 'skylake-smp2', hypervisor: 'kvm' });
  t.deepEqual(
    j.attacks.map((a) => a['name']),
    ['clear-cr0-wp', 'overwrite-lstar'],
  );
  for (const a of j.attacks) {
    t.deepEqual(Object.keys(a), ['name', 'stopped', 'applicable', 'stop', 'detail']);
    t.is(a['stopped'], true);
    t.is(a['applicable'], true);
    t.is(typeof a['stop'], 'string');
    t.is(typeof a['detail'], 'string');
  }
  t.regex(String(j.attacks[0]!['stop']), /^#GP \(cr-pin\)/);
  t.regex(String(j.attacks[1]!['stop']), /^#GP \(msr-filter\); msr-write exit \(LSTAR\)/);
  t.is(r.out.trim().split('\n').length, 1, 'one JSON line and nothing else');
});

needsFixtures(test)('the table: a header, one row per attack, a summary; exit 0', async (t) => {
  const r = await heki(['attacks', 'overwrite-gdtr']);
  t.is(r.code, 0, r.err);
  const lines = r.out.trim().split('\n');
  t.regex(lines[0]!, /^running 1 attack, each on its own machine with a booted Debian 6.1 kernel$/);
  t.regex(lines[1]!, /^attack\s+stopped\s+stop$/);
  t.regex(lines[2]!, /^overwrite-gdtr\s+yes\s+#GP \(dt-filter\); dt-write exit \(gdtr\)$/);
  t.regex(lines[3]!, /^1 of 1 attacks stopped in \d+\.\d s$/);
});

test('an unknown attack name is exit 2 and named; nothing runs', async (t) => {
  const r = await heki(['attacks', 'clear-cr0-wp', 'no-such-attack', '--json']);
  t.is(r.code, 2);
  t.is(r.out, '');
  t.regex(r.err, /unknown attack: 'no-such-attack'/);
  t.regex(r.err, /heki attacks --list/);
});

test('an unknown flag is exit 2 with the usage', async (t) => {
  const r = await heki(['attacks', '--jsn']);
  t.is(r.code, 2);
  t.regex(r.err, /usage: heki attacks/);
});

test('without fixtures: exit 2, naming where they were looked for', async (t) => {
  const dir = join(tmpdir(), 'heki-no-fixtures-here');
  const b = io();
  const code = await createAttacksCommand({ fixtureDir: dir }).run(['clear-cr0-wp'], b.io);
  const r = b.run();
  t.is(code, 2);
  t.is(r.out, '');
  t.true(r.err.includes(`kernel fixtures not found in ${dir}`), r.err);
  t.regex(r.err, /HEKI_FIXTURES/);
});

test('an attack that is not stopped makes the run exit 1 and is reported with its detail', async (t) => {
  const fake = (names: readonly string[] = []): Promise<Result<AttacksRun, never>> => {
    const bad = (n: string): boolean => n === 'write-kernel-text';
    const attacks = names.map((name) => ({
      name,
      stopped: !bad(name),
      applicable: true,
      stop: bad(name) ? 'nothing: the byte changed' : '#GP (cr-pin)',
      detail: `detail of ${name}`,
    }));
    return Promise.resolve({
      ok: true,
      value: { attacks, total: attacks.length, stopped: attacks.filter((a) => a.stopped).length, notApplicable: 0, cpu: 'skylake-smp2' },
    });
  };
  const b = io();
  const code = await createAttacksCommand({ runAttacks: fake }).run(['write-kernel-text', 'clear-cr0-wp'], b.io);
  t.is(code, 1);
  t.regex(
    b.run().out,
    /1 of 2 attacks stopped in .*; NOT stopped: write-kernel-text\n\nwrite-kernel-text: nothing: the byte changed\n {2}detail of write-kernel-text\n/,
  );
  const j = io();
  t.is(await createAttacksCommand({ runAttacks: fake }).run(['write-kernel-text', '--json'], j.io), 1);
  t.like(JSON.parse(j.run().out), { total: 1, stopped: 0 });
});

test('--list names every attack with its expected stop; --list --json is machine-readable', async (t) => {
  const r = await heki(['attacks', '--list']);
  t.is(r.code, 0);
  for (const a of listAttacks()) t.true(r.out.includes(`${a.name}\n    ${a.title}\n    expected stop: ${a.expectedStop}`), a.name);
  t.regex(r.out, /boot-return-thunks-to-ret\n.*\n.*\n {4}applies to: a CPU model with X86_FEATURE_RETHUNK\n/);
  const j = await heki(['attacks', '--list', '--json', 'flood-verifier']);
  t.is(j.code, 0);
  t.deepEqual(Object.keys((JSON.parse(j.out) as { attacks: object[] }).attacks[0]!), ['name', 'title', 'expectedStop']);
});

needsFixtures(test)('an attack that does not apply to the CPU model is n/a, with the reason, and the run still exits 0', async (t) => {
  // No machine is built for an attack whose needs the model does not meet: this runs without booting.
  const r = await heki(['attacks', 'boot-return-thunks-to-ret', 'boot-smp-locks-stripped', '--cpu', 'qemu64-up', '--json']);
  t.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as {
    attacks: Array<{ name: string; stopped: boolean; applicable: boolean; stop: string }>;
    total: number;
    stopped: number;
    notApplicable: number;
    cpu: string;
  };
  t.like(j, { total: 2, stopped: 0, notApplicable: 2, cpu: 'qemu64-up' });
  t.deepEqual(
    j.attacks.map((a) => [a.name, a.stopped, a.applicable]),
    [
      ['boot-return-thunks-to-ret', false, false],
      ['boot-smp-locks-stripped', false, false],
    ],
  );
  t.is(j.attacks[0]!.stop, 'not applicable on CPU model qemu64-up: it has no X86_FEATURE_RETHUNK');
  t.regex(j.attacks[1]!.stop, /^not applicable on CPU model qemu64-up: it has 1 CPU present, so boot patches the lock prefixes to UP/);
  const table = await heki(['attacks', 'boot-return-thunks-to-ret', '--cpu', 'qemu64-up']);
  t.is(table.code, 0, table.err);
  t.regex(table.out, /^boot-return-thunks-to-ret\s+n\/a\s+not applicable on CPU model qemu64-up: it has no X86_FEATURE_RETHUNK$/m);
  t.regex(table.out, /^0 of 1 attacks stopped in \d+\.\d s \(1 not applicable on CPU model qemu64-up: boot-return-thunks-to-ret\)$/m);
});

test('an unknown CPU model is exit 2, named', async (t) => {
  const r = await heki(['attacks', 'clear-cr0-wp', '--cpu', 'no-such-cpu']);
  t.is(r.code, 2);
  t.is(r.out, '');
  t.regex(r.err, /^heki( attacks)?: --cpu: .*no-such-cpu/);
});

/** A runner that reports each attack as it finishes, like checks/attacks.ts's. */
function reportingRunner(order: readonly number[]) {
  return (
    names: readonly string[] = [],
    opts?: { onReport?: (r: { name: string; stopped: boolean; applicable: boolean; stop: string; detail: string }, i: number) => void },
  ): Promise<Result<AttacksRun, never>> => {
    const attacks = names.map((name) => ({ name, stopped: true, applicable: true, stop: '#GP (cr-pin)', detail: `detail of ${name}` }));
    for (const i of order) opts?.onReport?.(attacks[i]!, i);
    return Promise.resolve({ ok: true, value: { attacks, total: attacks.length, stopped: attacks.length, notApplicable: 0, cpu: 'skylake-smp2' } });
  };
}

test('progress "k/n done" goes to stderr, one line per finished attack; stdout keeps the table and the JSON contract', async (t) => {
  // Issue 15 class 11: the catalogue took minutes with no sign of how far it was.
  const names = ['clear-cr0-wp', 'overwrite-lstar', 'overwrite-gdtr'];
  const b = io();
  t.is(await createAttacksCommand({ runAttacks: reportingRunner([1, 0, 2]) as never }).run(names, b.io), 0);
  const r = b.run();
  t.deepEqual(r.err.trimEnd().split('\n'), [
    'heki attacks: 1/3 done (overwrite-lstar: stopped)',
    'heki attacks: 2/3 done (clear-cr0-wp: stopped)',
    'heki attacks: 3/3 done (overwrite-gdtr: stopped)',
  ]);
  t.regex(r.out, /^running 3 attacks, each on its own machine with a booted Debian 6.1 kernel\nattack\s+stopped\s+stop\nclear-cr0-wp\s+yes/);
  const j = io();
  t.is(await createAttacksCommand({ runAttacks: reportingRunner([0, 1, 2]) as never }).run([...names, '--json'], j.io), 0);
  const out = JSON.parse(j.run().out) as { attacks: object[]; total: number; stopped: number };
  t.deepEqual(Object.keys(out).slice(0, 3), ['attacks', 'total', 'stopped'], 'the contract fields come first');
  t.deepEqual(
    Object.keys(out.attacks[0]!).filter((k) => k !== 'applicable'),
    ['name', 'stopped', 'stop', 'detail'],
  );
  t.regex(j.run().err, /3\/3 done/);
});

test('on a terminal the progress is one status line redrawn in place, erased around each table row', async (t) => {
  const b = io();
  const ttyIo = { ...b.io, errIsTTY: true };
  t.is(await createAttacksCommand({ runAttacks: reportingRunner([0]) as never }).run(['clear-cr0-wp'], ttyIo), 0);
  const r = b.run();
  t.true(r.err.startsWith('\r\x1b[Kheki attacks: 0/1 done'), JSON.stringify(r.err));
  t.true(r.err.includes('\r\x1b[Kheki attacks: 1/1 done (clear-cr0-wp: stopped)'));
  t.true(r.err.endsWith('\r\x1b[K'), 'the status line is erased at the end');
  t.false(r.out.includes('\x1b'), 'no escape sequences in stdout');
});
