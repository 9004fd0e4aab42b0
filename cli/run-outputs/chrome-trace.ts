/**
 * Builds a Chrome trace-event file (the JSON format chrome://tracing and Perfetto open) of one
 * `heki run`: what `--trace` writes (cli/run-outputs/trace.ts).
 *
 * Tracks (threads of one process named after the scenario), top to bottom:
 * - `scenario`: one complete (`X`) event per step, named by its op, with its outcome,
 *   reason and `expect`;
 * - `vCPU n`: each hypercall as an `X` event named by its hypercall (KVM_HC_*), with its
 *   arguments and return value; each VM exit the VMM handled as an instant (`i`) event named
 *   by its reason, with the VMM's action;
 * - `verifier`: each request as an `X` event from the request to its verdict, named by its
 *   kind, with items, ok, reason and seq; a second lane (`verifier (2)`) when requests overlap,
 *   so the events of one track nest; resets and verifier starts as instants;
 * - `EPT`: each run of frames the core set to the same permissions as an instant.
 *
 * Times (`ts`, `dur`) are microseconds from the run's start. Memory is bounded: each event is
 * kept as its JSON text, at most `maxEvents` of them; past that, events are counted, dropped,
 * and the trace ends with an instant that says how many.
 */
import { HC_NAMES, isHypercallNr, statusName } from '../../shared/abi.ts';
import { eptString } from '../../hypervisor/ept/permissions.ts';
import type { VmExit } from '../../hypervisor/exits/exit.ts';
import type { VmObserver } from '../../hypervisor/observe/vm-observer.ts';
import type { StepResult } from '../../scenario/outcome.ts';
import type { Step } from '../../scenario/scenario.ts';

/** Events kept by default: about 200 bytes each, so a trace stays under ~100 MB. */
export const DEFAULT_MAX_EVENTS = 500_000;

/** Longest reason or note kept in an event's args. */
export const MAX_TEXT = 300;

const PID = 1;
const TID_SCENARIO = 1;
const TID_VCPU0 = 10;
const TID_VERIFIER0 = 1000;
const TID_EPT = 2000;

/** `text`, cut to `max` characters with an ellipsis. */
export function truncate(text: string, max = MAX_TEXT): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** A value as JSON can carry it: bigints in hex, byte arrays by length, long strings and arrays cut. */
export function jsonSafe(v: unknown, depth = 0): unknown {
  if (typeof v === 'bigint') return `0x${v.toString(16)}`;
  if (typeof v === 'string') return truncate(v);
  if (typeof v !== 'object' || v === null) return typeof v === 'function' || typeof v === 'symbol' ? undefined : v;
  if (v instanceof Uint8Array) return `<${v.length} bytes>`;
  if (depth >= 4) return '…';
  if (Array.isArray(v)) {
    const out = v.slice(0, 16).map((x) => jsonSafe(x, depth + 1));
    if (v.length > 16) out.push(`… ${v.length - 16} more`);
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = jsonSafe(x, depth + 1);
  return out;
}

/** The hypercall's name for a track (KVM_HC_...), or its number. */
function hypercallName(nr: number): string {
  return isHypercallNr(nr) ? HC_NAMES[nr] : `hypercall ${nr}`;
}

/** An exit's fields for its event's args (the reason is the event's name). */
function exitArgs(exit: VmExit): Record<string, unknown> {
  const { reason: _reason, vcpu: _vcpu, ...rest } = exit;
  return jsonSafe(rest) as Record<string, unknown>;
}

/** How to build a trace. */
export interface ChromeTraceOptions {
  /** `performance.now()` at the run's start: time 0 of the trace. */
  readonly origin: number;
  /** The process name (the scenario's). */
  readonly process: string;
  /** Most events kept (default {@link DEFAULT_MAX_EVENTS}). */
  readonly maxEvents?: number;
}

/** One run's trace, fed by its observer and its steps. */
export class ChromeTrace {
  /** Watches the host side; never throws for what it is given (it converts, it does not keep). */
  readonly observer: VmObserver;
  readonly #origin: number;
  readonly #process: string;
  readonly #max: number;
  readonly #events: string[] = [];
  #dropped = 0;
  /** tid -> [name, sort index]. */
  readonly #tracks = new Map<number, [string, number]>();
  /** Verifier lanes in use: lane -> seq of the request on it. */
  readonly #lanes: Array<number | undefined> = [];
  /** Requests waiting for their verdict: seq -> lane and items. */
  readonly #pending = new Map<number, { lane: number; items: number }>();
  /** The step under way: its start. */
  #stepStart: number | undefined;
  #lastStepEnd: number;

  constructor(options: ChromeTraceOptions) {
    this.#origin = options.origin;
    this.#process = options.process;
    this.#max = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    this.#lastStepEnd = options.origin;
    this.#track(TID_SCENARIO, 'scenario', 0);
    this.observer = {
      hypercall: (e) => {
        const tid = this.#vcpu(e.vcpu);
        const args = {
          nr: e.nr,
          a0: jsonSafe(e.args[0] ?? 0n),
          a1: jsonSafe(e.args[1] ?? 0n),
          a2: jsonSafe(e.args[2] ?? 0n),
          a3: jsonSafe(e.args[3] ?? 0n),
          ret: e.ret,
          status: statusName(e.ret),
        };
        this.#complete(hypercallName(e.nr), 'hypercall', tid, e.start, e.end, args);
      },
      exit: (e) => {
        const args = { action: e.action, ...(e.note !== undefined ? { note: truncate(e.note) } : {}), ...exitArgs(e.exit) };
        this.#instant(e.exit.reason, 'exit', this.#vcpu(e.vcpu), e.time, args);
      },
      eptUpdate: (e) => {
        this.#track(TID_EPT, 'EPT', 100_000);
        const perms = eptString(e.perms);
        this.#instant(`EPT ${perms}`, 'ept', TID_EPT, e.time, { gfn: `0x${e.first.toString(16)}`, first: e.first, count: e.count, perms });
      },
      verifierRequest: (e) => {
        let lane = this.#lanes.findIndex((s) => s === undefined);
        if (lane < 0) lane = this.#lanes.length;
        this.#lanes[lane] = e.seq;
        this.#pending.set(e.seq, { lane, items: e.items });
      },
      verdict: (e) => {
        const p = this.#pending.get(e.seq);
        this.#pending.delete(e.seq);
        if (p) this.#lanes[p.lane] = undefined;
        const v = e.verdict;
        const denied = v.items?.filter((i) => !i.ok).length;
        const args = {
          seq: e.seq,
          vm: e.vm,
          items: p?.items ?? v.items?.length ?? 1,
          ok: v.ok,
          reason: truncate(v.reason),
          ...(denied ? { deniedItems: denied } : {}),
          plugins: v.plugins.join(','),
          ...(v.retryable ? { retryable: true } : {}),
        };
        this.#complete(e.kind, 'verifier', this.#verifierLane(p?.lane ?? 0), e.start, e.end, args);
      },
      reset: (e) => this.#instant('reset', 'lifecycle', this.#verifierLane(0), e.time, { vm: e.vm, why: truncate(e.why) }),
      verifierStarted: (e) =>
        this.#instant('verifier started', 'lifecycle', this.#verifierLane(0), e.time, { vm: e.vm, plugins: (e.init.plugins ?? []).join(',') || 'default' }),
    };
  }

  /** Events kept so far (metadata excluded). */
  get count(): number {
    return this.#events.length;
  }

  /** Events dropped past the bound. */
  get dropped(): number {
    return this.#dropped;
  }

  /** A step began at `time`. */
  stepStarted(_step: Step, time: number): void {
    this.#stepStart = time;
  }

  /** A step ended at `time` with `result`. */
  stepFinished(result: StepResult, step: Step, time: number): void {
    const start = this.#stepStart ?? this.#lastStepEnd;
    this.#stepStart = undefined;
    this.#lastStepEnd = time;
    this.#complete(`${result.index}. ${result.op}`, 'step', TID_SCENARIO, start, time, {
      index: result.index,
      op: result.op,
      outcome: result.outcome,
      reason: truncate(result.reason),
      expect: result.expected,
      ok: result.ok,
      line: step.line,
    });
  }

  /**
   * The trace file's text in pieces (so a large trace is never one string): metadata, the
   * events, a note of dropped events and of requests still without a verdict at `end`.
   */
  *chunks(end: number): Generator<string> {
    const tail: string[] = [];
    for (const [seq, p] of this.#pending) {
      tail.push(
        this.#json({
          name: 'no verdict',
          cat: 'verifier',
          ph: 'i',
          s: 't',
          ts: this.#us(end),
          pid: PID,
          tid: this.#verifierLane(p.lane),
          args: { seq, items: p.items },
        }),
      );
    }
    if (this.#dropped > 0) {
      tail.push(
        this.#json({
          name: `trace truncated: ${this.#dropped} events dropped`,
          cat: 'trace',
          ph: 'i',
          s: 'g',
          ts: this.#us(end),
          pid: PID,
          tid: TID_SCENARIO,
          args: { kept: this.#events.length, dropped: this.#dropped },
        }),
      );
    }
    const meta = [this.#json({ name: 'process_name', ph: 'M', pid: PID, tid: 0, args: { name: this.#process } })];
    for (const [tid, [name, sort]] of [...this.#tracks].sort((a, b) => a[1][1] - b[1][1])) {
      meta.push(this.#json({ name: 'thread_name', ph: 'M', pid: PID, tid, args: { name } }));
      meta.push(this.#json({ name: 'thread_sort_index', ph: 'M', pid: PID, tid, args: { sort_index: sort } }));
    }
    yield '{"traceEvents":[\n';
    const all = [meta, this.#events, tail];
    let first = true;
    for (const list of all) {
      for (let i = 0; i < list.length; i += 4096) {
        const part = list.slice(i, i + 4096).join(',\n');
        if (part.length === 0) continue;
        yield first ? part : `,\n${part}`;
        first = false;
      }
    }
    yield '\n],"displayTimeUnit":"ms"}\n';
  }

  /** The whole file as one string (tests, small runs). */
  toJson(end: number): string {
    return [...this.chunks(end)].join('');
  }

  #us(time: number): number {
    // Milliseconds to microseconds, kept to the nanosecond.
    return Math.round((time - this.#origin) * 1e6) / 1e3;
  }

  #json(e: Record<string, unknown>): string {
    return JSON.stringify(e);
  }

  #push(e: Record<string, unknown>): void {
    if (this.#events.length >= this.#max) {
      this.#dropped++;
      return;
    }
    this.#events.push(this.#json(e));
  }

  #complete(name: string, cat: string, tid: number, start: number, end: number, args: Record<string, unknown>): void {
    const ts = this.#us(start);
    this.#push({ name, cat, ph: 'X', ts, dur: Math.max(0, Math.round((this.#us(end) - ts) * 1000) / 1000), pid: PID, tid, args });
  }

  #instant(name: string, cat: string, tid: number, time: number, args: Record<string, unknown>): void {
    this.#push({ name, cat, ph: 'i', s: 't', ts: this.#us(time), pid: PID, tid, args });
  }

  #track(tid: number, name: string, sort: number): number {
    if (!this.#tracks.has(tid)) this.#tracks.set(tid, [name, sort]);
    return tid;
  }

  #vcpu(id: number): number {
    return this.#track(TID_VCPU0 + id, `vCPU ${id}`, 10 + id);
  }

  #verifierLane(lane: number): number {
    return this.#track(TID_VERIFIER0 + lane, lane === 0 ? 'verifier' : `verifier (${lane + 1})`, 50_000 + lane);
  }
}
