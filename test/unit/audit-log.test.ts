/**
 * The hash-chained audit log (hypervisor/audit/audit-log.ts): records chain by SHA-256 of the
 * previous line, go to the file synchronously, and any edit, removal, reordering or garbage
 * is reported at the first bad line.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, appendFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AUDIT_GENESIS_PREV, AuditLog, verifyAuditChain } from '../../hypervisor/audit/audit-log.ts';

const fixedClock = (): (() => Date) => {
  let t = Date.UTC(2025, 0, 1);
  return () => new Date((t += 1000));
};

function sampleLog(n: number): { log: AuditLog; text: string } {
  const log = AuditLog.inMemory({ now: fixedClock() });
  const lines: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = log.append({ event: 'module-load', module: `m${i}`, accepted: i % 2 === 0, reason: 'signed by key 0123456789abcdef' });
    lines.push(JSON.stringify(r));
  }
  return { log, text: lines.map((l) => l + '\n').join('') };
}

test('records are numbered from 1 and chained by the SHA-256 of the previous line', (t) => {
  const { log, text } = sampleLog(3);
  const lines = text.trimEnd().split('\n');
  const recs = log.records();
  t.is(recs.length, 3);
  t.is(recs[0]!.seq, 1);
  t.is(recs[0]!.prev, AUDIT_GENESIS_PREV);
  t.is(recs[1]!.prev, createHash('sha256').update(lines[0]!).digest('hex'));
  t.is(recs[2]!.prev, createHash('sha256').update(lines[1]!).digest('hex'));
  t.is(recs[0]!.time, '2025-01-01T00:00:01.000Z');
  t.deepEqual(Object.keys(recs[0]!).slice(0, 3), ['seq', 'time', 'prev']);
  t.deepEqual(log.head(), { seq: 3, hash: createHash('sha256').update(lines[2]!).digest('hex') });
  t.deepEqual(verifyAuditChain(text), { ok: true, records: 3, head: log.head() });
  t.deepEqual(verifyAuditChain(''), { ok: true, records: 0, head: { seq: 0, hash: AUDIT_GENESIS_PREV } });
});

test('reserved field names are refused', (t) => {
  const log = AuditLog.inMemory();
  t.throws(() => log.append({ seq: 5 }), { message: /reserved/ });
  t.throws(() => log.append({ prev: 'x' }), { message: /reserved/ });
});

test('tampering is reported at the first bad line', (t) => {
  const { text } = sampleLog(5);
  const lines = text.trimEnd().split('\n');
  const join_ = (ls: string[]): string => ls.map((l) => l + '\n').join('');

  const edited = [...lines];
  edited[2] = edited[2]!.replace('"accepted":true', '"accepted":false');
  t.like(verifyAuditChain(join_(edited)), { ok: false, line: 4 });

  const removed = lines.filter((_, i) => i !== 1);
  t.like(verifyAuditChain(join_(removed)), { ok: false, line: 2 });

  const swapped = [lines[0]!, lines[2]!, lines[1]!, lines[3]!, lines[4]!];
  t.like(verifyAuditChain(join_(swapped)), { ok: false, line: 2 });

  const garbage = [...lines];
  garbage[3] = 'not json';
  t.deepEqual(verifyAuditChain(join_(garbage)), { ok: false, line: 4, reason: 'not valid JSON' });

  const firstGone = lines.slice(1);
  t.like(verifyAuditChain(join_(firstGone)), { ok: false, line: 1 });

  // Re-chaining an edited line is caught too unless every later line is rewritten.
  const edited2 = [...lines];
  const r = JSON.parse(edited2[4]!) as Record<string, unknown>;
  r['module'] = 'rootkit';
  edited2[4] = JSON.stringify(r);
  t.true(verifyAuditChain(join_(edited2)).ok, 'the last line has no successor: only a recorded head catches this');
  const head = verifyAuditChain(text);
  if (!head.ok) throw new Error('sample log broken');
  t.like(verifyAuditChain(join_(edited2), { head: head.head }), { ok: false });

  const blank = [...lines];
  blank.splice(2, 0, '');
  t.deepEqual(verifyAuditChain(join_(blank)), { ok: false, line: 3, reason: 'empty line' });
});

test('truncation at the end is caught against a recorded head', (t) => {
  const { log, text } = sampleLog(4);
  const lines = text.trimEnd().split('\n');
  const cut = lines
    .slice(0, 3)
    .map((l) => l + '\n')
    .join('');
  t.true(verifyAuditChain(cut).ok);
  const v = verifyAuditChain(cut, { head: log.head() });
  t.false(v.ok);
  if (!v.ok) {
    t.is(v.line, 4);
    t.regex(v.reason, /truncated/);
  }
});

test('file-backed log: synchronous appends, reopen continues the chain, a broken file is refused', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-audit-'));
  try {
    const path = join(dir, 'audit.jsonl');
    const a = AuditLog.open({ path });
    if (!a.ok) throw new Error(a.error);
    a.value.append({ event: 'boot' });
    // On disk before append returns: no close, no flush needed.
    t.is(readFileSync(path, 'utf8').split('\n').length, 2);
    a.value.append({ event: 'module-load', accepted: false });
    a.value.close();
    t.throws(() => a.value.append({ event: 'late' }));

    const b = AuditLog.open({ path, fsync: true });
    if (!b.ok) throw new Error(b.error);
    t.is(b.value.append({ event: 'reboot' }).seq, 3);
    b.value.close();
    const v = verifyAuditChain(readFileSync(path, 'utf8'));
    t.like(v, { ok: true, records: 3 });

    appendFileSync(path, '{"seq":4}\n');
    const c = AuditLog.open({ path });
    t.false(c.ok);
    if (!c.ok) t.regex(c.error, /line 4/);

    writeFileSync(join(dir, 'torn.jsonl'), readFileSync(path, 'utf8').split('\n').slice(0, 2).join('\n'));
    const d = AuditLog.open({ path: join(dir, 'torn.jsonl') });
    t.false(d.ok);
    if (!d.ok) t.regex(d.error, /not terminated/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
