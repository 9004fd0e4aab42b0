/**
 * `heki run --report` as the command sees it, on a scripted machine: a path that cannot be
 * written is exit 2 naming it before anything runs (and leaves no file behind), a run
 * writes the page and prints its one-line summary, a machine without inspect() still gets
 * a report of its steps and denials, and an existing report is kept until the run is over.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliIo } from '../../cli/command.ts';
import { createRunCommand, type MachineFactory } from '../../cli/commands/run.ts';
import { ScriptedMachine } from '../../scenario/index.ts';
import type { StepOutcome } from '../../machine/machine-api.ts';

const SCENARIO = `name: scripted<report>
kernel: real
steps:
  - boot: {}
  - write: { addr: "_stext+0x10", bytes: "90", expect: denied }
  - read: { addr: init_task, len: 8, expect: allowed }
`;

function setup(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-report-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 's.yaml'), SCENARIO);
  return dir;
}

async function run(argv: string[], cwd: string): Promise<{ code: number; out: string; err: string; started: number }> {
  let out = '';
  let err = '';
  let started = 0;
  const factory: MachineFactory = () => {
    started++;
    const answer = (c: { method: string }): StepOutcome =>
      c.method === 'write' ? { outcome: 'denied', reason: '#PF (write-protect): <text>' } : { outcome: 'allowed', reason: `${c.method}: done` };
    return Promise.resolve({ ok: true, value: new ScriptedMachine({ answer }) });
  };
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd };
  const code = await createRunCommand(factory).run(argv, io);
  return { code, out, err, started };
}

test('a report path in a folder that does not exist: exit 2 naming it, no machine started', async (t) => {
  const dir = setup(t);
  const r = await run(['s.yaml', '--report', 'no/such/dir/out.html'], dir);
  t.is(r.code, 2);
  t.is(r.started, 0);
  t.regex(r.err, /--report .*no\/such\/dir\/out\.html: cannot write: the folder .* does not exist/);
});

test('a report path that is a folder: exit 2 saying so', async (t) => {
  const dir = setup(t);
  const r = await run(['s.yaml', '--report', '.'], dir);
  t.is(r.code, 2);
  t.regex(r.err, /--report .*: cannot write: is a folder; name a file/);
});

test('a run writes the page and prints where, with its counts; steps and the denied one are in it, escaped', async (t) => {
  const dir = setup(t);
  const r = await run(['s.yaml', '--report', 'out.html'], dir);
  t.is(r.code, 0, r.err + r.out);
  t.regex(
    r.out,
    new RegExp(
      `report: ${join(dir, 'out.html').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(0 regions, 1 denials; no map: the machine offers no inspection\\)\\n$`,
    ),
  );
  const html = readFileSync(join(dir, 'out.html'), 'utf8');
  t.true(html.startsWith('<!DOCTYPE html>'));
  t.true(html.includes('heki run: scripted&lt;report&gt;'));
  t.regex(html, /<tr id="step-2" class="step denied">/);
  t.true(html.includes('#PF (write-protect): &lt;text&gt;'));
  t.regex(html, /<tr id="denial-1" class="denial" data-source="step">/);
});

test('under --json the summary goes to stderr and stdout stays one object', async (t) => {
  const dir = setup(t);
  const r = await run(['s.yaml', '--json', '--report', 'out.html'], dir);
  t.is(r.code, 0);
  t.notThrows(() => JSON.parse(r.out));
  t.regex(r.err, /^report: .*out\.html/);
});

test('an existing file is only replaced at the end; --check with --report is bad usage', async (t) => {
  const dir = setup(t);
  writeFileSync(join(dir, 'old.html'), 'old');
  const r = await run(['s.yaml', '--report', 'old.html'], dir);
  t.is(r.code, 0);
  t.true(readFileSync(join(dir, 'old.html'), 'utf8').startsWith('<!DOCTYPE html>'));
  const c = await run(['s.yaml', '--check', '--report', 'x.html'], dir);
  t.is(c.code, 2);
  t.regex(c.err, /--check runs no steps; --report does not apply/);
  t.false(existsSync(join(dir, 'x.html')));
});
