/**
 * The `--trace` builder (cli/run-outputs/chrome-trace.ts): Chrome trace-event JSON with named
 * tracks, hypercalls as complete events on their vCPU's track, verifier requests as complete
 * events from request to verdict (overlapping ones on a second lane), EPT runs and exits as
 * instants, steps on the scenario track, times in microseconds from the run's start, and a
 * bound on the events kept.
 */
import test from 'ava';
import { ChromeTrace, truncate } from '../../cli/run-outputs/chrome-trace.ts';
import { HC } from '../../shared/abi.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import type { Verdict } from '../../shared/protocol.ts';
import type { Step } from '../../scenario/scenario.ts';
import { stepResult } from '../../scenario/outcome.ts';

interface Ev {
  name: string;
  ph: string;
  ts: number;
  dur?: number;
  pid: number;
  tid: number;
  s?: string;
  args: Record<string, any>;
}

const verdict = (ok: boolean, reason: string): Verdict => ({ v: 1, id: 7, ok, reason, plugins: ['ftrace'] });

function parse(json: string): { events: Ev[]; tracks: Map<number, string>; sort: Map<number, number>; doc: any } {
  const doc = JSON.parse(json);
  const events = doc.traceEvents as Ev[];
  const tracks = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_name').map((e) => [e.tid, e.args['name'] as string]));
  const sort = new Map(events.filter((e) => e.ph === 'M' && e.name === 'thread_sort_index').map((e) => [e.tid, e.args['sort_index'] as number]));
  return { events, tracks, sort, doc };
}

test('the trace names its tracks and puts each event on its own, in microseconds from the start', (t) => {
  const trace = new ChromeTrace({ origin: 1000, process: 'heki run demo' });
  const o = trace.observer;
  const step = { op: 'ftrace', index: 1, line: 4, expect: 'allowed', enable: 'tcp_*' } as unknown as Step;
  trace.stepStarted(step, 1000.5);
  o.hypercall!({ vcpu: 0, nr: HC.HEKI_TEXT_PATCH, args: [0x9000n, 0n, 0n, 0n], ret: 0, start: 1001, end: 1003.25 });
  o.verifierRequest!({
    seq: 0,
    vm: 'vm0',
    kind: 'text-patch',
    items: 12,
    request: () => {
      throw new Error('not needed');
    },
    time: 1001.5,
  });
  o.verdict!({ seq: 0, vm: 'vm0', kind: 'text-patch', verdict: verdict(true, 'ok'), start: 1001.5, end: 1002.5 });
  o.eptUpdate!({ first: 0x1000, count: 3586, perms: EPT_R | EPT_XS | EPT_IMMUTABLE, time: 1002.75 });
  o.exit!({
    vcpu: 0,
    exit: { reason: 'ept-violation', vcpu: 0, gpa: 0x1000010n, access: 'write', mode: 'kernel', perms: 5, pageWalk: false },
    action: 'inject',
    time: 1003.5,
  });
  o.hypercall!({ vcpu: 1, nr: 999, args: [0n, 0n, 0n, 0n], ret: -1000, start: 1004, end: 1004 });
  trace.stepFinished(stepResult(1, 'ftrace', 'allowed', 'enabled tracing of 12 site(s)', 'allowed'), step, 1005);

  const { events, tracks, sort, doc } = parse(trace.toJson(1006));
  t.is(doc.displayTimeUnit, 'ms');
  t.like(
    events.find((e) => e.name === 'process_name'),
    { ph: 'M', args: { name: 'heki run demo' } },
  );
  t.deepEqual([...tracks.values()].sort(), ['EPT', 'scenario', 'vCPU 0', 'vCPU 1', 'verifier']);
  const tid = (name: string) => [...tracks].find(([, n]) => n === name)![0];
  t.true(sort.get(tid('scenario'))! < sort.get(tid('vCPU 0'))!);
  t.true(sort.get(tid('vCPU 1'))! < sort.get(tid('verifier'))!);

  const hc = events.find((e) => e.name === 'KVM_HC_HEKI_TEXT_PATCH')!;
  t.like(hc, { ph: 'X', ts: 1000, dur: 2250, tid: tid('vCPU 0'), args: { nr: HC.HEKI_TEXT_PATCH, a0: '0x9000', ret: 0, status: '0' } });
  t.like(
    events.find((e) => e.name === 'hypercall 999'),
    { ph: 'X', tid: tid('vCPU 1'), args: { ret: -1000, status: '-KVM_ENOSYS' } },
  );

  t.like(
    events.find((e) => e.name === 'text-patch'),
    { ph: 'X', ts: 1500, dur: 1000, tid: tid('verifier'), args: { seq: 0, items: 12, ok: true, reason: 'ok', plugins: 'ftrace' } },
  );
  t.like(
    events.find((e) => e.ph === 'i' && e.tid === tid('EPT')),
    { name: 'EPT R-X-I-', s: 't', ts: 2750, args: { gfn: '0x1000', first: 0x1000, count: 3586, perms: 'R-X-I-' } },
  );
  t.like(
    events.find((e) => e.name === 'ept-violation'),
    { ph: 'i', s: 't', tid: tid('vCPU 0'), args: { action: 'inject', gpa: '0x1000010', access: 'write' } },
  );
  t.like(
    events.find((e) => e.tid === tid('scenario') && e.ph === 'X'),
    {
      name: '1. ftrace',
      ts: 500,
      dur: 4500,
      args: { op: 'ftrace', outcome: 'allowed', reason: 'enabled tracing of 12 site(s)', expect: 'allowed', ok: true, line: 4 },
    },
  );
  t.is(trace.count, 6);
});

test('overlapping verifier requests go on separate lanes, so each track nests', (t) => {
  const trace = new ChromeTrace({ origin: 0, process: 'p' });
  const o = trace.observer;
  const req = (seq: number, time: number) =>
    o.verifierRequest!({ seq, vm: 'vm0', kind: 'module-load', items: 1, request: () => ({ kind: 'module-unload', vm: 'vm0', name: 'x' }), time });
  req(0, 1);
  req(1, 2);
  o.verdict!({ seq: 0, vm: 'vm0', kind: 'module-load', verdict: verdict(true, 'ok'), start: 1, end: 3 });
  o.verdict!({ seq: 1, vm: 'vm0', kind: 'module-load', verdict: verdict(false, `denied: ${'x'.repeat(1000)}`), start: 2, end: 4 });
  req(2, 5);
  const { events, tracks } = parse(trace.toJson(6));
  const byseq = (s: number) => events.find((e) => e.ph === 'X' && e.args['seq'] === s)!;
  t.is(tracks.get(byseq(0).tid), 'verifier');
  t.is(tracks.get(byseq(1).tid), 'verifier (2)');
  t.false(byseq(1).args['ok']);
  t.is(byseq(1).args['reason'].length, 300, 'a long reason is cut');
  t.true(byseq(1).args['reason'].endsWith('…'));
  // A request still without a verdict at the end is marked.
  t.like(
    events.find((e) => e.name === 'no verdict'),
    { ph: 'i', args: { seq: 2 } },
  );
  t.is(truncate('short'), 'short');
});

test('the trace keeps at most maxEvents events and says how many it dropped', (t) => {
  const trace = new ChromeTrace({ origin: 0, process: 'p', maxEvents: 10 });
  for (let i = 0; i < 25; i++) trace.observer.eptUpdate!({ first: i * 2, count: 1, perms: EPT_R, time: i });
  t.is(trace.count, 10);
  t.is(trace.dropped, 15);
  const { events } = parse(trace.toJson(30));
  t.is(events.filter((e) => e.ph === 'i' && e.name.startsWith('EPT')).length, 10);
  t.like(
    events.find((e) => e.name.startsWith('trace truncated')),
    { args: { kept: 10, dropped: 15 } },
  );
});
