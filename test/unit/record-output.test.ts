/**
 * The `--record` output fed host-side events directly: lines in the order verdicts arrive
 * (each with its send order), resets and verifier starts where they happened, requests the
 * run ended without a verdict for, and no file at all when the machine did not start.
 */
import test from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { recordOutput } from '../../cli/run-outputs/record.ts';
import type { RunOutputContext } from '../../cli/run-outputs/run-output.ts';
import type { OutgoingRequest } from '../../hypervisor/verifier-link/verifier-link.ts';
import type { Verdict } from '../../shared/protocol.ts';
import { RequestLogReader, type LogEntry } from '../../shared/request-log.ts';
import type { ScenarioResult } from '../../scenario/outcome.ts';
import type { Scenario } from '../../scenario/scenario.ts';

const ctx = { io: { out: () => {}, err: () => {}, cwd: '/' }, scenario: { name: 'fed' } as Scenario, display: 'fed.yaml' } as RunOutputContext;
const keyring = { ed25519: [], certificates: [], revoked: { ed25519KeyIds: [], x509Sha256: [] } };

function tmp(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-rec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function entries(path: string): LogEntry[] {
  const r = new RequestLogReader();
  const out: LogEntry[] = [];
  for (const l of gunzipSync(readFileSync(path)).toString('utf8').split('\n')) {
    if (!l) continue;
    const x = r.line(l);
    if (!x.ok) throw new Error(`line ${x.error.line}: ${x.error.message}`);
    if (x.entry) out.push(x.entry);
  }
  return out;
}

const unload = (name: string): OutgoingRequest => ({ kind: 'module-unload', vm: 'vm0', name });
const verdict = (id: number, ok: boolean, reason: string): Verdict => ({ v: 1, id, ok, reason, plugins: [] });

test('requests are written with their verdicts in the order the verdicts arrive', async (t) => {
  const path = join(tmp(t), 'r.jsonl');
  const s = recordOutput.open(path, ctx);
  if (!s.ok) return t.fail(s.error);
  const o = s.value.observer!;
  o.verifierStarted!({ vm: 'vm0', init: { keyring, manifest: 'MANIFEST', faultInjection: true }, time: 0 });
  for (const [seq, name] of [
    [0, 'a'],
    [1, 'b'],
    [2, 'c'],
  ] as const)
    o.verifierRequest!({ seq, vm: 'vm0', kind: 'module-unload', items: 1, request: () => unload(name), time: 0 });
  o.verdict!({ seq: 1, vm: 'vm0', kind: 'module-unload', verdict: verdict(2, true, 'b gone'), start: 0, end: 1 });
  o.reset!({ vm: 'vm0', why: 'reboot', time: 1 });
  o.verdict!({ seq: 0, vm: 'vm0', kind: 'module-unload', verdict: verdict(1, false, 'a unknown'), start: 0, end: 2 });
  const done = await s.value.finish({} as ScenarioResult);
  t.true(done.ok);
  t.regex(done.ok ? done.value : '', /record: 3 requests \(1 without a verdict\)/);
  const es = entries(path);
  t.deepEqual(
    es.map((e) =>
      e.type === 'request'
        ? `request ${e.seq} ${e.request && 'name' in e.request ? e.request.name : '-'} ${e.verdict ? e.verdict.reason : 'no verdict'}`
        : e.type,
    ),
    ['verifier', 'request 1 b b gone', 'reset', 'request 0 a a unknown', 'request 2 c no verdict', 'end'],
  );
  const v = es[0]!;
  t.deepEqual(v.type === 'verifier' ? v.init : undefined, { keyring, manifest: 'MANIFEST' }, 'the init without fault injection');
});

test('the request is encoded when it is sent, not when its verdict comes', async (t) => {
  const path = join(tmp(t), 'r.jsonl');
  const s = recordOutput.open(path, ctx);
  if (!s.ok) return t.fail(s.error);
  const o = s.value.observer!;
  const bytes = Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0);
  const req: OutgoingRequest = {
    kind: 'text-patch',
    vm: 'vm0',
    items: [{ kind: 'ftrace', site: 0xffffffff81000000n, oldBytes: bytes, newBytes: bytes, currentBytes: bytes }],
  };
  o.verifierRequest!({ seq: 0, vm: 'vm0', kind: 'text-patch', items: 1, request: () => req, time: 0 });
  bytes[0] = 0xcc; // the core reuses its buffer after the verdict
  o.verdict!({ seq: 0, vm: 'vm0', kind: 'text-patch', verdict: verdict(1, true, 'ok'), start: 0, end: 1 });
  t.true((await s.value.finish({} as ScenarioResult)).ok);
  const r = entries(path).find((e) => e.type === 'request');
  t.deepEqual(r?.type === 'request' && r.request?.kind === 'text-patch' ? [...r.request.items[0]!.oldBytes] : [], [0x0f, 0x1f, 0x44, 0, 0]);
});

test('no file when the machine did not start; an unwritable path is refused at open', async (t) => {
  const dir = tmp(t);
  const path = join(dir, 'r.jsonl');
  const s = recordOutput.open(path, ctx);
  if (!s.ok) return t.fail(s.error);
  t.true((await s.value.finish(undefined)).ok);
  t.false(existsSync(path));
  const bad = recordOutput.open(join(dir, 'missing', 'r.jsonl'), ctx);
  t.false(bad.ok);
  t.regex(bad.ok ? '' : bad.error, /cannot write/);
});
