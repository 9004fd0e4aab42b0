/**
 * The request log format (shared/request-log.ts): bigints and bytes survive a round trip in
 * their tagged forms, and the reader names the line and the problem of every malformed line.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HEX_BYTES_MAX, RequestLogReader, encodeLogLine, logHeader, readRequestLog, type LogEntry, type LogRead } from '../../shared/request-log.ts';

const header = encodeLogLine(logHeader({ scenario: 's', source: 's.yaml', created: new Date(0) }));

const patch = {
  type: 'request',
  seq: 3,
  vm: 'vm0',
  kind: 'text-patch',
  request: {
    kind: 'text-patch',
    vm: 'vm0',
    items: [
      {
        kind: 'ftrace',
        site: 0xffffffff81001c10n,
        oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
        newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4),
        currentBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
      },
    ],
  },
  verdict: { v: 1, id: 9, ok: true, reason: 'all 1 items allowed', items: [{ ok: true, reason: 'ftrace: ok' }], plugins: ['ftrace'] },
};

function read(lines: string[]): { entries: LogEntry[]; error?: { line: number; message: string } } {
  const r = new RequestLogReader();
  const entries: LogEntry[] = [];
  for (const l of lines) {
    const x = r.line(l);
    if (!x.ok) return { entries, error: x.error };
    if (x.entry) entries.push(x.entry);
  }
  const e = r.finish();
  return e ? { entries, error: e } : { entries };
}

test('bigints and bytes are tagged: short bytes as hex, long ones as base64, and read back equal', (t) => {
  const line = encodeLogLine(patch);
  t.true(line.includes('{"$bigint":"0xffffffff81001c10"}'));
  t.true(line.includes('{"$hex":"0f1f440000"}'));
  const image = new Uint8Array(HEX_BYTES_MAX + 1).map((_, i) => i);
  const load = {
    type: 'request',
    seq: 0,
    vm: 'vm0',
    kind: 'module-load',
    request: { kind: 'module-load', vm: 'vm0', name: 'm', image: Buffer.from(image), sections: [], percpu: 0x10n },
    verdict: null,
  };
  const loadLine = encodeLogLine(load);
  t.true(loadLine.includes(`{"$base64":"${Buffer.from(image).toString('base64')}"}`), 'a Buffer is bytes too');
  const { entries, error } = read([header, line, loadLine]);
  t.is(error, undefined);
  t.deepEqual(entries[0], patch as unknown as LogEntry);
  const m = entries[1] as Extract<LogEntry, { type: 'request' }>;
  t.true(m.request?.kind === 'module-load' && m.request.image instanceof Uint8Array && !Buffer.isBuffer(m.request.image));
  t.deepEqual(m.request?.kind === 'module-load' ? [...m.request.image] : [], [...image]);
  t.is(m.request?.kind === 'module-load' ? m.request.percpu : undefined, 0x10n);
});

test('a negative bigint in a plugin configuration round-trips', (t) => {
  const v = {
    type: 'verifier',
    vm: 'vm0',
    init: { keyring: { ed25519: [], certificates: [], revoked: { ed25519KeyIds: [], x509Sha256: [] } }, pluginConfig: { p: { delta: -5n } } },
  };
  const { entries, error } = read([header, encodeLogLine(v)]);
  t.is(error, undefined);
  t.deepEqual(entries[0], v as unknown as LogEntry);
});

test('the reader names the line and the problem', (t) => {
  const cases: Array<[string[], number, RegExp]> = [
    [[], 0, /the file is empty/],
    [[''], 1, /empty line/],
    [['{"type":"end","requests":0}'], 1, /not a heki request log/],
    [[header.replace('"version":1', '"version":2')], 1, /request log version 2 is not supported/],
    [[header.replace('"protocol":1', '"protocol":9')], 1, /verifier protocol 9/],
    [[header, '[1,2'], 2, /not JSON/],
    [[header, '{"type":"end","requests":0}', '{"type":"end","requests":0}'], 3, /a line after the end line/],
    [[header, encodeLogLine(patch), '{"type":"end","requests":2}'], 3, /counts 2 requests, the file has 1/],
    [[header, encodeLogLine({ ...patch, request: { ...patch.request, v: 1 } })], 2, /must not carry v or id/],
    [[header, encodeLogLine({ ...patch, kind: 'set-memory' })], 2, /request\.kind is set-memory but the request is a text-patch/],
    [[header, encodeLogLine(patch).replace('"0f1f440000"', '"0F1F440000"')], 2, /\$hex must be a string of lowercase hex digit pairs/],
    [[header, encodeLogLine(patch).replace('"0xffffffff81001c10"', '"12"')], 2, /\$bigint must be a string of "0x"/],
    [[header, encodeLogLine(patch).replace('"ok":true,"reason":"all', '"ok":"yes","reason":"all')], 2, /verdict\.ok must be a boolean/],
    [[header, encodeLogLine({ ...patch, request: null, verdict: null })], 2, /both null/],
    [[header, '{"type":"verifier","vm":"vm0","init":{"keyring":{},"pluginModules":[3]}}'], 2, /init\.pluginModules must be an array of strings/],
    [[header, '{"type":"reset","vm":"vm0"}'], 2, /reset\.why must be a string/],
    // Issue 15 class 6: a duplicated request is a malformed log, not a verdict difference.
    [[header, encodeLogLine(patch), encodeLogLine(patch)], 3, /request seq 3 appears twice \(first on line 2\): a malformed log/],
  ];
  for (const [lines, line, message] of cases) {
    const { error } = read(lines);
    t.truthy(error, lines.join(' | ').slice(0, 80));
    t.is(error?.line, line, lines.join(' | ').slice(0, 80));
    t.regex(error?.message ?? '', message);
  }
});

test('readRequestLog streams a file: entries with their lines, then the first problem', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-log-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'r.jsonl');
  writeFileSync(path, [header, '{"type":"reset","vm":"vm0","why":"reboot"}', encodeLogLine(patch), '{"type":"end","requests":1}'].join('\n') + '\n');
  const got: LogRead[] = [];
  let scenario: string | undefined;
  for await (const r of readRequestLog(path, (h) => (scenario = h.scenario))) got.push(r);
  t.is(scenario, 's');
  t.deepEqual(
    got.map((r) => (r.ok ? `${r.line}:${r.entry.type}` : `error ${r.error.line}`)),
    ['2:reset', '3:request', '4:end'],
  );
  writeFileSync(path, `${header}\n{"type":"reset","vm":"vm0","why":"x"}\nnot json\n`);
  const bad: LogRead[] = [];
  for await (const r of readRequestLog(path)) bad.push(r);
  t.is(bad.length, 2);
  t.deepEqual(bad[1]!.ok ? undefined : bad[1]!.error.line, 3);
  // Written compressed (several gzip members, as heki run --record writes them), read the same.
  const lines = [header, '{"type":"reset","vm":"vm0","why":"reboot"}', encodeLogLine(patch), '{"type":"end","requests":1}'];
  writeFileSync(path, Buffer.concat([gzipSync(`${lines.slice(0, 2).join('\n')}\n`), gzipSync(`${lines.slice(2).join('\n')}\n`)]));
  const gz: string[] = [];
  for await (const r of readRequestLog(path)) gz.push(r.ok ? `${r.line}:${r.entry.type}` : `error ${r.error.message}`);
  t.deepEqual(gz, ['2:reset', '3:request', '4:end']);
  writeFileSync(path, gzipSync(`${lines.join('\n')}\n`).subarray(0, 40));
  const torn: LogRead[] = [];
  for await (const r of readRequestLog(path)) torn.push(r);
  t.regex(torn.at(-1)!.ok ? '' : (torn.at(-1) as { error: { message: string } }).error.message, /cannot read: unexpected end of file/);
  const missing: LogRead[] = [];
  for await (const r of readRequestLog(join(dir, 'nope.jsonl'))) missing.push(r);
  t.regex(missing[0]!.ok ? '' : missing[0]!.error.message, /cannot read/);
});
