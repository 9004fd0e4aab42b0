/**
 * `heki run --audit <log>` writes every verdict to a hash-chained log that `heki audit
 * verify` accepts, and that it rejects once a line is edited.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '../../cli/main.ts';
import type { CliIo } from '../../cli/command.ts';
import { needsFixtures } from '../helpers/fixtures.ts';

function io(): CliIo & { stdout: string; stderr: string } {
  const o = { stdout: '', stderr: '', cwd: process.cwd(), out: (s: string) => void (o.stdout += s), err: (s: string) => void (o.stderr += s) };
  return o;
}

needsFixtures(test)('the audit log of a scenario run verifies, and a tampered copy does not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-audit-'));
  const log = join(dir, 'audit.jsonl');
  const run = io();
  t.is(await main(['run', 'scenarios/module-lifecycle.yaml', '--audit', log], run), 0, run.stderr);
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  t.true(lines.length >= 3, 'boot text and module verdicts');
  t.like(JSON.parse(lines[0]!), { seq: 1, event: 'verdict', kind: 'kernel-text', ok: true });

  const ok = io();
  t.is(await main(['audit', 'verify', log], ok), 0, ok.stderr);

  const edited = lines.map((l, i) => (i === 1 ? l.replace('"ok":true', '"ok":false') : l));
  writeFileSync(join(dir, 'edited.jsonl'), `${edited.join('\n')}\n`);
  const bad = io();
  t.is(await main(['audit', 'verify', join(dir, 'edited.jsonl')], bad), 1);
  t.regex(bad.stdout + bad.stderr, /line 3/);
});
