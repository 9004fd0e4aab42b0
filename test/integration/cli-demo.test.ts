import test from 'ava';
import { main } from '../../cli/main.ts';
import { needsFixtures } from '../helpers/fixtures.ts';
import type { CliIo } from '../../cli/command.ts';

function io(): CliIo & { stdout: string; stderr: string } {
  const o = { stdout: '', stderr: '', cwd: process.cwd(), out: (s: string) => void (o.stdout += s), err: (s: string) => void (o.stderr += s) };
  return o;
}

test('heki demo --core --json reports every attack stopped and exits 0', async (t) => {
  const o = io();
  t.is(await main(['demo', '--core', '--json'], o), 0);
  const r = JSON.parse(o.stdout) as { steps: Array<{ name: string; stopped: boolean; stop: string }>; stopped: number; total: number };
  t.is(r.stopped, r.total);
  t.true(r.total >= 6);
  t.regex(r.steps.find((s) => s.name.includes('SMEP'))!.stop, /#GP \(cr-pin\)/);
  t.regex(r.steps.find((s) => s.name.includes('alias'))!.stop, /ept-violation/);
});

test('an unknown command or flag exits 2 and names it', async (t) => {
  const a = io();
  t.is(await main(['frobnicate'], a), 2);
  t.regex(a.stderr, /unknown command 'frobnicate'/);
  const b = io();
  t.is(await main(['demo', '--frob'], b), 2);
  t.regex(b.stderr, /--frob/);
});

test('heki --help lists the commands and exits 0', async (t) => {
  const o = io();
  t.is(await main(['--help'], o), 0);
  for (const c of ['demo', 'keygen', 'sign', 'verify-module', 'audit']) t.regex(o.stdout, new RegExp(`\\b${c}\\b`));
});

needsFixtures(test)('heki demo --json runs the default scenario on the real kernel: every step as expected', async (t) => {
  const o = io();
  t.is(await main(['demo', '--json'], o), 0, o.stderr);
  const r = JSON.parse(o.stdout) as {
    name: string;
    passed: boolean;
    steps: Array<{ op: string; outcome: string; ok: boolean }>;
    summary: { verdicts: number; chain: string };
  };
  t.is(r.name, 'demo');
  t.true(r.passed);
  t.true(r.steps.every((s) => s.ok));
  t.deepEqual(
    r.steps.slice(0, 3).map((s) => [s.op, s.outcome]),
    [
      ['boot', 'allowed'],
      ['load-module', 'allowed'],
      ['load-module', 'allowed'],
    ],
  );
  t.is(r.summary.chain, 'intact');
  t.true(r.summary.verdicts >= 8, 'boot text, six modules and two ftrace batches were verified');
});
