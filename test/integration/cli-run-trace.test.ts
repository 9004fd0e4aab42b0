/**
 * `heki run --trace` on the real kernel: a small scenario (boot, a signed module, ftrace on a
 * glob, a write to kernel text the EPT refuses, a text poke the verifier refuses) writes a
 * Chrome trace with named tracks, the text-patch hypercall on the vCPU's track, the verifier's
 * requests with their verdicts (the denial among them), EPT runs with their permissions and
 * every step; the verdicts are those of the same run without --trace; a path in a folder that
 * does not exist is exit 2 naming it. Skipped without the fixtures.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtureDir, needsFixtures } from '../helpers/fixtures.ts';
import { heki, type CliRun as Run } from '../helpers/cli.ts';

const fixtureTest = needsFixtures(test);

const SCENARIO = `name: trace-small
kernel: real
keys:
  certs: [${join(fixtureDir, 'signing_key.x509.der')}]
steps:
  - boot: { expect: allowed }
  - load-module: { path: ${join(fixtureDir, 'modules', 'crc7.ko')}, expect: allowed }
  - ftrace: { enable: "tcp_v4_*", expect: allowed }
  - write: { addr: "_stext+0x10", bytes: "90", mode: kernel, expect: denied }
  - text-poke: { addr: "_stext+0x10", bytes: "cc", kind: ftrace, expect: denied }
`;

function folder(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-trace-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'small.yaml'), SCENARIO);
  return dir;
}

interface Ev {
  name: string;
  cat?: string;
  ph: string;
  ts: number;
  dur?: number;
  tid: number;
  s?: string;
  args: Record<string, any>;
}

type Steps = Array<{ index: number; op: string; outcome: string; reason: string; ok: boolean }>;

fixtureTest('heki run --trace writes a Chrome trace of the run, and the verdicts are those of the run without it', async (t) => {
  const dir = folder(t);
  const plain = await heki(['run', 'small.yaml', '--json'], dir);
  t.is(plain.code, 0, plain.out + plain.err);
  const traced = await heki(['run', 'small.yaml', '--json', '--trace', 'out/../trace.json'], dir);
  t.is(traced.code, 0, traced.out + traced.err);
  const path = join(dir, 'trace.json');
  t.regex(traced.err, new RegExp(`^trace: [\\d,]+ events in ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(open it in https://ui.perfetto.dev\\)$`, 'm'));

  const outcomes = (r: Run) => (JSON.parse(r.out) as { steps: Steps }).steps.map((s) => [s.index, s.op, s.outcome, s.ok]);
  t.deepEqual(outcomes(traced), outcomes(plain));

  const doc = JSON.parse(readFileSync(path, 'utf8')) as { traceEvents: Ev[]; displayTimeUnit: string };
  t.is(doc.displayTimeUnit, 'ms');
  const events = doc.traceEvents;
  const tracks = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid, e.args['name'] as string]));
  for (const name of ['scenario', 'vCPU 0', 'verifier', 'EPT']) t.true([...tracks.values()].includes(name), `a track named ${name}`);
  const tid = (name: string) => [...tracks].find(([, n]) => n === name)![0];
  t.true(
    events.every((e) => e.ph === 'M' || (Number.isFinite(e.ts) && e.ts >= 0)),
    'times are from the run start',
  );

  // The text-patch hypercall of the ftrace step, on the vCPU's track.
  const patches = events.filter((e) => e.ph === 'X' && e.name === 'KVM_HC_HEKI_TEXT_PATCH');
  t.true(patches.length >= 2, 'the ftrace batch and the poke');
  t.true(patches.every((e) => e.tid === tid('vCPU 0') && e.dur! >= 0 && typeof e.args['ret'] === 'number'));
  t.true(events.some((e) => e.ph === 'X' && e.name === 'KVM_HC_HEKI_LOAD_MODULE' && e.args['ret'] === 0));

  // The verifier's requests: the boot text check, the module, the ftrace batch, the denied poke.
  const verifier = events.filter((e) => e.ph === 'X' && e.tid === tid('verifier'));
  for (const kind of ['kernel-text', 'module-load', 'text-patch'])
    t.true(
      verifier.some((e) => e.name === kind),
      `a ${kind} request`,
    );
  t.true(verifier.every((e) => typeof e.args['ok'] === 'boolean' && typeof e.args['reason'] === 'string' && typeof e.args['seq'] === 'number'));
  const ftraceBatch = verifier.find((e) => e.name === 'text-patch' && e.args['ok'] === true && e.args['items'] > 1);
  t.truthy(ftraceBatch, 'the ftrace batch, allowed, with its items');
  const denial = verifier.find((e) => e.name === 'text-patch' && e.args['ok'] === false);
  t.truthy(denial, 'the poke the verifier denied');
  t.true(denial!.args['reason'].length > 0);

  // EPT runs: the boot lock at least, each with its permissions.
  const ept = events.filter((e) => e.ph === 'i' && e.tid === tid('EPT'));
  t.true(ept.length > 0);
  t.true(ept.every((e) => /^[R-][W-][X-][x-][I-][F-]$/.test(e.args['perms']) && e.args['count'] >= 1 && /^0x[0-9a-f]+$/.test(e.args['gfn'])));
  t.true(
    ept.some((e) => e.args['perms'] === 'R-X-I-'),
    'kernel text locked read-execute, immutable',
  );
  t.true(ept.length < 20_000, 'runs, not one event per frame');

  // The write to kernel text: an EPT or page-table refusal, and its step denied.
  const steps = events.filter((e) => e.ph === 'X' && e.tid === tid('scenario'));
  t.deepEqual(
    steps.map((e) => [e.args['op'], e.args['outcome'], e.args['expect']]),
    [
      ['boot', 'allowed', 'allowed'],
      ['load-module', 'allowed', 'allowed'],
      ['ftrace', 'allowed', 'allowed'],
      ['write', 'denied', 'denied'],
      ['text-poke', 'denied', 'denied'],
    ],
  );
  t.true(steps.every((e) => typeof e.args['reason'] === 'string' && e.args['ok'] === true));
});

fixtureTest('heki run --trace into a folder that does not exist is exit 2, naming the path, before anything runs', async (t) => {
  const dir = folder(t);
  const r = await heki(['run', 'small.yaml', '--trace', 'missing/trace.json'], dir);
  t.is(r.code, 2);
  t.is(r.out, '');
  t.true(r.err.includes(join(dir, 'missing', 'trace.json')), r.err);
  t.regex(r.err, /--trace .*: cannot write: the folder .*missing does not exist/);
  t.false(existsSync(join(dir, 'missing')));
});
