/**
 * `heki bench --json --quick`: one JSON object whose keys are exactly the report's keys and
 * `machine` (cpus, node version), every figure a number or null, and a progress bar on
 * stderr. Quick mode runs tiny iteration counts; no figure is checked against a time here
 * (the targets are the benchmark's business, not the tests').
 */
import test from 'ava';
import type { CliIo } from '../../cli/command.ts';
import { main } from '../../cli/main.ts';
import { BENCH_KEYS } from '../../bench/run.ts';

test('heki bench --json --quick prints exactly the report keys and the machine', async (t) => {
  t.timeout(15 * 60_000);
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd: process.cwd() };
  const code = await main(['bench', '--json', '--quick'], io);
  t.is(code, 0, err);
  const lines = out.trim().split('\n');
  t.is(lines.length, 1, 'one JSON object on stdout, nothing else');
  const report = JSON.parse(lines[0]!) as Record<string, unknown>;
  t.deepEqual(Object.keys(report).sort(), [...BENCH_KEYS, 'machine'].sort());
  for (const k of BENCH_KEYS) t.true(report[k] === null || (typeof report[k] === 'number' && Number.isFinite(report[k])), `${k} is a number or null`);
  const machine = report['machine'] as Record<string, unknown>;
  t.is(typeof machine['cpus'], 'number');
  t.is(machine['node'], process.version);
  t.regex(err, /100% done/, 'the progress bar ran on stderr');
  for (const k of BENCH_KEYS) if (report[k] === null) t.regex(err, new RegExp(`not measured: ${k}: `), `${k} is null and the reason is given`);
  t.is(report['failover_lost'], 0, 'no request is ever lost');
});

test('heki bench refuses unknown flags and arguments', async (t) => {
  let err = '';
  const io: CliIo = { out: () => undefined, err: (s) => void (err += s), cwd: process.cwd() };
  t.is(await main(['bench', '--fast'], io), 2);
  t.regex(err, /Unknown option '--fast'/);
  t.is(await main(['bench', 'now'], io), 2);
});
