/**
 * The verifier's side of the verification ring (shared/ring/): a loop that takes request
 * records from the core, decides them, and writes verdict records back, while the worker
 * keeps answering its comlink messages (control plane and fallback).
 *
 * Waiting, adaptively:
 *
 * - after a request it spins on the ring's head for up to `spinMs` (a request that arrives
 *   then is seen within nanoseconds), in slices of `sliceMs`, and between slices yields to
 *   the event loop (one `setImmediate` turn) so comlink calls are served; it yields at once
 *   when the core says it posted a comlink message (CTL.CONTROL);
 * - once `spinMs` pass without a request it parks on the ring's doorbell (CTL.DOORBELL) with
 *   its "parked" word set; the core rings the doorbell when it publishes a request or posts a
 *   comlink message. By default (`park: 'block'`) it parks in a blocking `Atomics.wait`, a
 *   futex wake, where `Atomics.waitAsync` needs an event-loop turn besides (0.7-5.7 ms from
 *   promotion to a spare's wake-up, measured on 2 vCPUs). Neither helps when no CPU is free:
 *   at failover the core and the dying worker's teardown hold both vCPUs, and a spare still
 *   wakes 0.2-8 ms after promotion (measured), a scheduler timeslice, not the wait. A
 *   blocked worker cannot run its message port, which is why comlink posts ring the doorbell
 *   too; and the wait is cut every {@link PARK_SLICE_MS}, when the loop takes an event-loop
 *   turn and parks again without spinning, so nothing else on the worker's loop starves. An
 *   idle worker so costs a wake-up per slice, not a core.
 *
 * Fail closed, as on comlink: a malformed record is a denial naming the problem; an injected
 * crash, hang, garbage or wrong id behaves as it does for a comlink `verify`; a verdict that
 * does not fit the ring is kept ("parked") until the core collects it over comlink.
 */
import { PROTOCOL_VERSION, type SectionGrant, type Verdict } from '../shared/protocol.ts';
import { CTL, CTL_BYTES, VERDICT_HEADER, checkRingLayout, type RingLayout } from '../shared/ring/layout.ts';
import type { PatchRecords } from '../shared/ring/patch-records.ts';
import { readRequest, type RingRequest } from '../shared/ring/request-codec.ts';
import { SpscRing } from '../shared/ring/spsc-ring.ts';
import { waitAsync } from '../shared/ring/wait-async.ts';
import { expandItems, writeParked, writeVerdict, type PackedVerdict } from '../shared/ring/verdict-codec.ts';
import type { InjectedFault, RingServerTiming } from '../shared/worker-api.ts';

/** Longest a blocking park lasts before the loop takes an event-loop turn and parks again (ms). */
export const PARK_SLICE_MS = 50;

/** Default timing: spin 2 ms after a request, yield every 0.5 ms. */
export const DEFAULT_RING_TIMING: RingServerTiming = { spinMs: 2, sliceMs: 0.5 };

/** What the server needs of the worker. */
export interface RingHandlers {
  /** Decides a text-patch batch in record form (a promise when a plugin answered with one: it is awaited). */
  patches(id: number, vm: string, records: PatchRecords): PatchOutcome | Promise<PatchOutcome>;
  /** Decides any other request (a protocol message; the verifier validates it); a promise as for `patches`. */
  message(msg: unknown): Verdict | Promise<Verdict>;
  /** Takes the fault armed for the next request, if any. */
  takeFault(): InjectedFault | undefined;
}

/** What the worker answers on a record batch. */
export interface PatchOutcome {
  readonly verdict: PackedVerdict;
  readonly grants: readonly SectionGrant[] | undefined;
}

/** The widest spin window (ms). */
export const MAX_SPIN_MS = 50;

/** A decided request, on its way to the ring. */
interface Decided {
  verdict: PackedVerdict;
  /** True when the ring cannot carry it (it is parked for the core to collect). */
  readonly park: boolean;
  readonly grants: readonly SectionGrant[] | undefined;
  readonly records: PatchRecords | undefined;
  /** The protocol verdict, when the request was decided as one. */
  readonly full: Verdict | undefined;
}

/** Verdicts kept for the core to collect, at most this many (the core collects each at once). */
const MAX_PARKED = 1024;

const nowMs = (): number => performance.now();
const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The loop serving one ring. */
export class RingServer {
  readonly #ctl: Int32Array;
  readonly #req: SpscRing;
  readonly #ver: SpscRing;
  readonly #reserve: number;
  readonly #handlers: RingHandlers;
  readonly #timing: RingServerTiming;
  readonly #parked = new Map<number, Verdict>();
  #stopped = false;
  /** Requests served, for statistics. */
  served = 0;
  /** Times the loop parked. */
  parks = 0;

  /** Checks the layout; throws a RangeError naming the problem (the caller turns it into an answer). */
  constructor(layout: RingLayout, handlers: RingHandlers, timing: RingServerTiming = DEFAULT_RING_TIMING) {
    const problem = checkRingLayout(layout);
    if (problem) throw new RangeError(problem);
    this.#ctl = new Int32Array(layout.sab, 0, CTL_BYTES >>> 2);
    this.#req = new SpscRing(layout.sab, CTL_BYTES, layout.requestBytes, this.#ctl, CTL.REQ_HEAD, CTL.REQ_TAIL);
    this.#ver = new SpscRing(layout.sab, CTL_BYTES + layout.requestBytes, layout.verdictBytes, this.#ctl, CTL.VER_HEAD, CTL.VER_TAIL);
    this.#reserve = layout.reserveBytes;
    this.#handlers = handlers;
    this.#timing = timing;
  }

  /**
   * Starts the loop (it runs until {@link stop} or the thread ends), and marks the ring when
   * this thread exits, so the core notices a crash at once.
   */
  start(): void {
    process.once('exit', (code) => {
      Atomics.store(this.#ctl, CTL.DEAD, (code | 0) + 1);
      Atomics.notify(this.#ctl, CTL.VER_HEAD);
    });
    void this.#loop();
  }

  /** Stops the loop at its next turn. */
  stop(): void {
    this.#stopped = true;
    Atomics.add(this.#ctl, CTL.DOORBELL, 1);
    Atomics.notify(this.#ctl, CTL.DOORBELL);
  }

  /** The parked verdict of request `id`, handed over once. */
  collect(id: number): Verdict | undefined {
    const v = this.#parked.get(id);
    this.#parked.delete(id);
    return v;
  }

  async #loop(): Promise<void> {
    const { sliceMs } = this.#timing;
    const minSpin = this.#timing.spinMs;
    const ctl = this.#ctl;
    let spinMs = minSpin;
    let lastWork = nowMs();
    while (!this.#stopped) {
      const sliceStart = nowMs();
      const control = Atomics.load(ctl, CTL.CONTROL);
      for (;;) {
        const served = this.#serveAll();
        // A decision waiting for a plugin's promise: wait for it (requests stay in order).
        if (served === true || (served instanceof Promise && (await served))) lastWork = nowMs();
        const t = nowMs();
        if (t - sliceStart >= sliceMs || t - lastWork >= spinMs || Atomics.load(ctl, CTL.CONTROL) !== control) break;
      }
      if (nowMs() - lastWork >= spinMs) {
        const parkedAt = nowMs();
        // Parked until a request comes; a comlink message or the end of a park slice gets an
        // event-loop turn and the loop parks again without spinning.
        for (;;) {
          const seen = Atomics.load(ctl, CTL.CONTROL);
          await this.#park(seen);
          if (this.#stopped || this.#req.peek() >= 0) break;
          await yieldToLoop();
        }
        lastWork = nowMs();
        // Woken soon after parking: requests come about as often as the window; widen it.
        // Woken late: the stream stopped; back to the shortest window.
        const idle = lastWork - parkedAt;
        spinMs = idle < 4 * spinMs ? Math.min(MAX_SPIN_MS, spinMs * 2) : minSpin;
      } else {
        await yieldToLoop();
      }
    }
  }

  /**
   * Waits on the doorbell until the core publishes a request or posts a comlink message
   * (CTL.CONTROL no longer `controlSeen`), the loop is stopped, or a blocking park slice ends.
   */
  async #park(controlSeen: number): Promise<void> {
    const ctl = this.#ctl;
    Atomics.store(ctl, CTL.WORKER_PARKED, 1);
    const bell = Atomics.load(ctl, CTL.DOORBELL);
    // INVARIANT: "parked" is set before the doorbell and the head are read, and the core reads
    // "parked" after it stores a new head (and rings after every comlink post), so either the
    // wait sees a new doorbell value or the core's notify wakes it.
    if (this.#req.peek() < 0 && !this.#stopped && Atomics.load(ctl, CTL.CONTROL) === controlSeen) {
      this.parks++;
      if (this.#timing.park === 'async') {
        const w = waitAsync(ctl, CTL.DOORBELL, bell);
        if (w.async) await w.value;
      } else {
        Atomics.wait(ctl, CTL.DOORBELL, bell, PARK_SLICE_MS);
      }
    }
    Atomics.store(ctl, CTL.WORKER_PARKED, 0);
  }

  /** Serves every request published now; true when there was one (a promise of it while a decision waits for a plugin). */
  #serveAll(): boolean | Promise<boolean> {
    let any = false;
    for (;;) {
      const off = this.#req.peek();
      if (off < 0) return any;
      any = true;
      const pending = this.#serveOne(off);
      if (pending) return pending.then(() => true);
    }
  }

  #serveOne(off: number): Promise<void> | undefined {
    const r = readRequest(this.#req, off);
    if (!r.ok) {
      if (r.size === undefined) this.#req.releaseAll();
      else this.#req.release(r.size);
      this.#answer({
        verdict: { id: r.id, ok: false, reason: `malformed request: ${r.error}`, plugins: [] },
        park: false,
        grants: undefined,
        records: undefined,
        full: undefined,
      });
      return;
    }
    // The records were copied out: the request's space is free before the verifier decides.
    this.#req.release(r.size);
    this.served++;
    const fault = this.#handlers.takeFault();
    if (fault === 'crash') process.exit(70);
    if (fault === 'hang') for (;;);
    if (fault === 'garbage') {
      this.#garbage();
      return undefined;
    }
    const answer = (d: Decided): void => {
      if (fault === 'wrong-id') d.verdict = { ...d.verdict, id: d.verdict.id + 1000 };
      this.#answer(d);
    };
    const d = this.#decide(r.request);
    if (d instanceof Promise) return d.then(answer);
    answer(d);
    return undefined;
  }

  /** Decides a request: the packed verdict, and what it takes to make the protocol verdict it stands for. */
  #decide(req: RingRequest): Decided | Promise<Decided> {
    if (req.kind === 'text-patch') {
      // Grants (never from the built-in patch plugins) have no place in a verdict record.
      const fromPatches = ({ verdict, grants }: PatchOutcome): Decided => ({
        verdict,
        park: grants !== undefined && grants.length > 0,
        grants,
        records: req.records,
        full: undefined,
      });
      const out = this.#handlers.patches(req.id, req.vm, req.records);
      return out instanceof Promise ? out.then(fromPatches) : fromPatches(out);
    }
    const fromVerdict = (v: Verdict): Decided => ({
      verdict: { id: v.id, ok: v.ok, reason: v.reason, plugins: v.plugins },
      park: v.items !== undefined || v.grants !== undefined,
      grants: undefined,
      records: undefined,
      full: v,
    });
    const v = this.#handlers.message({ v: PROTOCOL_VERSION, id: req.id, vm: req.vm, kind: req.kind, name: req.name });
    return v instanceof Promise ? v.then(fromVerdict) : fromVerdict(v);
  }

  /** Writes the verdict, or parks it when the ring cannot carry it; then wakes the core if it waits. */
  #answer(d: Decided): void {
    const v = d.verdict;
    const written = d.park ? 'too-large' : writeVerdict(this.#ver, v, this.#reserve);
    if (written !== 'written') {
      if (this.#parked.size >= MAX_PARKED) this.#parked.delete(this.#parked.keys().next().value as number);
      this.#parked.set(v.id, d.full ? { ...d.full, id: v.id } : materialize(v, d.grants, d.records));
      // INVARIANT: the core has at most reserve / VERDICT_HEADER requests in flight on the
      // ring and full verdicts always leave the reserve free, so the marker fits.
      writeParked(this.#ver, v.id);
    }
    if (Atomics.load(this.#ctl, CTL.CORE_PARKED) === 1) Atomics.notify(this.#ctl, CTL.VER_HEAD);
  }

  /** The injected "garbage" fault: a verdict message the core cannot read. */
  #garbage(): void {
    const off = this.#ver.reserve(VERDICT_HEADER);
    if (off < 0) return;
    this.#ver.u8.fill(0xa5, off, off + VERDICT_HEADER);
    this.#ver.u32[(off + 20) >>> 2] = VERDICT_HEADER;
    this.#ver.commit();
    if (Atomics.load(this.#ctl, CTL.CORE_PARKED) === 1) Atomics.notify(this.#ctl, CTL.VER_HEAD);
  }
}

/** The protocol verdict a packed one stands for (what a comlink `verify` would have answered). */
export function materialize(v: PackedVerdict, grants: readonly SectionGrant[] | undefined, records: PatchRecords | undefined): Verdict {
  const items = v.items && records ? expandItems(v.items, (i) => records.siteHex(i)) : undefined;
  return {
    v: PROTOCOL_VERSION,
    id: v.id,
    ok: v.ok,
    reason: v.reason,
    ...(items ? { items } : {}),
    ...(v.ok && grants && grants.length ? { grants } : {}),
    plugins: [...v.plugins],
  };
}
