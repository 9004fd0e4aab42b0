/**
 * The core's side of the verification ring (shared/ring/) to one verifier worker: it writes
 * request records, and reads and checks verdict records, beside the worker's comlink
 * endpoint, which stays the control plane and the fallback.
 *
 * Waiting, adaptively. After it publishes a request the core spins on the verdict ring's head
 * for about as long as recent answers of that size took (never more than `maxSpinUs`): a
 * verifier that is spinning itself answers a small request in a few microseconds, and the
 * answer is taken without an event-loop turn. Past that the core waits in
 * `Atomics.waitAsync` (the event loop keeps running) with its "parked" word set, and the
 * verifier notifies it.
 *
 * What the channel does not do is decide fail-closed policy: it resolves each request with a
 * {@link RingAnswer} (a checked verdict, "parked", or "garbage" naming the problem), and the
 * link (verifier-link.ts) applies exactly the rules it applies to comlink answers: timeouts,
 * garbage and crashes deny the request and restart the verifier, once per request.
 */
import { PROTOCOL_VERSION, type Verdict } from '../../shared/protocol.ts';
import { CTL, CTL_BYTES, VERDICT_HEADER, type RingLayout } from '../../shared/ring/layout.ts';
import type { PatchRecords } from '../../shared/ring/patch-records.ts';
import { writeTextPatchRequest, writeUnloadRequest } from '../../shared/ring/request-codec.ts';
import { SpscRing } from '../../shared/ring/spsc-ring.ts';
import { expandItems, type PackedVerdict } from '../../shared/ring/verdict-codec.ts';
import { readVerdict } from '../../shared/ring/verdict-reader.ts';
import { HAVE_WAIT_ASYNC, waitAsync } from '../../shared/ring/wait-async.ts';

/** How big the ring is and how the two ends wait. */
export interface RingOptions {
  /** Request ring bytes, a power of two (default 4 MiB: a 65,536-item batch fits). */
  readonly requestBytes?: number;
  /** Verdict ring bytes, a power of two (default 4 MiB). */
  readonly verdictBytes?: number;
  /** Longest the core spins for a verdict before it waits in Atomics.waitAsync (µs, default 1000). */
  readonly maxSpinUs?: number;
  /** How long the verifier keeps spinning after a request before it parks (ms, default 2). */
  readonly workerSpinMs?: number;
  /** Longest the verifier spins or serves before it yields to its event loop (ms, default 0.5). */
  readonly workerSliceMs?: number;
}

/** Defaults of {@link RingOptions}. */
export const RING_DEFAULTS = { requestBytes: 4 << 20, verdictBytes: 4 << 20, maxSpinUs: 1000, workerSpinMs: 2, workerSliceMs: 0.5 } as const;

/** How the ring answered one request. */
export type RingAnswer =
  /** A verdict whose every record checked out (items expand on first read). */
  | { readonly kind: 'verdict'; readonly verdict: Verdict }
  /** The verdict did not fit the ring: collect it over comlink. */
  | { readonly kind: 'parked' }
  /** The verifier answered something the core cannot accept. */
  | { readonly kind: 'garbage'; readonly why: string };

interface Pending {
  readonly id: number;
  /** Position in the order of sending (answers come in that order). */
  readonly seq: number;
  /** Items the verdict must have (undefined: none). */
  readonly items: number | undefined;
  readonly records: PatchRecords | undefined;
  /** Work units, for the spin estimate. */
  readonly units: number;
  readonly sentAt: number;
  resolve(a: RingAnswer): void;
}

const encoder = new TextEncoder();
const nowUs = (): number => performance.now() * 1000;

/** Requests of at most this many items count as "small" for the spin estimate. */
const SMALL = 16;

/** The core's end of one ring. */
export class RingChannel {
  readonly layout: RingLayout;
  readonly #ctl: Int32Array;
  readonly #req: SpscRing;
  readonly #ver: SpscRing;
  readonly #maxInFlight: number;
  readonly #maxSpinUs: number;
  readonly #pending: Pending[] = [];
  #head = 0;
  /** Requests sent and answers taken, in order: request `seq` is answered when `#taken > seq`. */
  #seq = 0;
  #taken = 0;
  #closed = false;
  #waiting = false;
  readonly #vmBytes = new Map<string, Uint8Array>();
  /** Recent round trip of a small request, and recent cost per item of a big one (µs). */
  #smallUs = 50;
  #perItemUs = 1;
  /**
   * Requests sent, answers taken, times the core had to wait in Atomics.waitAsync, and
   * requests sent without spinning because a waiter was already armed.
   */
  readonly counters = { sent: 0, answered: 0, waits: 0, queued: 0 };
  /** Called once when the ring says its worker is exiting (see CTL.DEAD). */
  #onDead: ((why: string) => void) | undefined;

  /**
   * Allocates the shared memory. `maxInFlight` bounds the requests in flight on the ring (the
   * verifier keeps room for that many "parked" markers). Throws a RangeError for sizes that
   * are not powers of two, or when the runtime lacks Atomics.waitAsync.
   */
  constructor(options: RingOptions = {}, maxInFlight = 256) {
    if (!HAVE_WAIT_ASYNC) throw new RangeError('the verification ring needs Atomics.waitAsync (Node 16 or newer)');
    const requestBytes = options.requestBytes ?? RING_DEFAULTS.requestBytes;
    const verdictBytes = options.verdictBytes ?? RING_DEFAULTS.verdictBytes;
    this.#maxInFlight = Math.max(1, Math.min(maxInFlight, Math.floor(verdictBytes / 4 / (2 * VERDICT_HEADER))));
    const sab = new SharedArrayBuffer(CTL_BYTES + requestBytes + verdictBytes);
    // Room for a marker per request in flight, wrap padding included.
    this.layout = { sab, requestBytes, verdictBytes, reserveBytes: this.#maxInFlight * 2 * VERDICT_HEADER };
    this.#ctl = new Int32Array(sab, 0, CTL_BYTES >>> 2);
    this.#req = new SpscRing(sab, CTL_BYTES, requestBytes, this.#ctl, CTL.REQ_HEAD, CTL.REQ_TAIL);
    this.#ver = new SpscRing(sab, CTL_BYTES + requestBytes, verdictBytes, this.#ctl, CTL.VER_HEAD, CTL.VER_TAIL);
    this.#maxSpinUs = options.maxSpinUs ?? RING_DEFAULTS.maxSpinUs;
  }

  /** Requests in flight on the ring. */
  get inFlight(): number {
    return this.#pending.length - this.#head;
  }

  /** True once {@link close} was called (the worker died or the link was disposed). */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends a text-patch batch. Undefined when the ring cannot take it now (closed, too many in
   * flight, no room): the caller sends it over comlink instead.
   */
  sendPatches(id: number, vm: string, records: PatchRecords): Promise<RingAnswer> | undefined {
    if (this.#closed || this.inFlight >= this.#maxInFlight) return undefined;
    if (!writeTextPatchRequest(this.#req, id, this.#vm(vm), records)) return undefined;
    return this.#await(id, records.count > 0 ? records.count : undefined, records, records.count);
  }

  /** Sends a module unload; undefined when the ring cannot take it now. */
  sendUnload(id: number, vm: string, name: string): Promise<RingAnswer> | undefined {
    if (this.#closed || this.inFlight >= this.#maxInFlight) return undefined;
    if (!writeUnloadRequest(this.#req, id, this.#vm(vm), encoder.encode(name))) return undefined;
    return this.#await(id, undefined, undefined, 1);
  }

  /** Stops reading the ring for good (its worker is dead). Requests in flight are the link's to answer. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Registers what to do when the worker marks the ring as exiting: the link fails its
   * requests closed and promotes the spare without waiting for the thread's exit event.
   */
  onDead(f: (why: string) => void): void {
    this.#onDead = f;
  }

  /**
   * Wakes the worker's loop (after promotion: the next request then finds it spinning). A
   * parked worker takes 0.4-2 ms to come out of Atomics.waitAsync (its event loop must turn;
   * measured on 2 vCPUs), longer than a small request's spin budget, so the next request
   * spins up to `maxSpinUs` instead of parking the core too, which would add the core's own
   * wake-up to the failover.
   */
  wake(): void {
    if (Atomics.load(this.#ctl, CTL.WORKER_PARKED) === 1) this.#ring();
    this.#smallUs = Math.max(this.#smallUs, this.#maxSpinUs / 3);
  }

  /**
   * Tells the worker a comlink message was posted to it (call after each post): its ring loop,
   * spinning or parked in a blocking wait, then takes an event-loop turn to serve it.
   */
  control(): void {
    Atomics.add(this.#ctl, CTL.CONTROL, 1);
    this.#ring();
  }

  /** Rings the doorbell a parked worker waits on. */
  #ring(): void {
    Atomics.add(this.#ctl, CTL.DOORBELL, 1);
    Atomics.notify(this.#ctl, CTL.DOORBELL);
  }

  /** True (and the death reported) when the worker marked the ring as exiting. */
  #checkDead(): boolean {
    const code = Atomics.load(this.#ctl, CTL.DEAD);
    if (code === 0) return false;
    if (!this.#closed) {
      this.#closed = true;
      this.#onDead?.(`worker exited with code ${code - 1}`);
    }
    return true;
  }

  #vm(vm: string): Uint8Array {
    let b = this.#vmBytes.get(vm);
    if (!b) {
      b = encoder.encode(vm);
      if (this.#vmBytes.size < 1024) this.#vmBytes.set(vm, b);
    }
    return b;
  }

  #await(id: number, items: number | undefined, records: PatchRecords | undefined, units: number): Promise<RingAnswer> {
    this.counters.sent++;
    let resolve!: (a: RingAnswer) => void;
    const promise = new Promise<RingAnswer>((r) => (resolve = r));
    const sentAt = nowUs();
    const seq = this.#seq++;
    this.#pending.push({ id, seq, items, records, units, sentAt, resolve });
    if (Atomics.load(this.#ctl, CTL.WORKER_PARKED) === 1) this.#ring();
    // Requests sent while an earlier one is still unanswered (a burst in one tick) do not spin:
    // the waiter armed for the earlier one takes their verdicts too. Spinning here would run
    // the burst one request at a time, each spin synchronous, and hold back every verdict
    // already taken (their continuations are microtasks) until the whole burst was sent: 30
    // requests behind a verifier that is waking up cost 5-60 ms after a failover (measured).
    if (this.#waiting) {
      this.counters.queued++;
      return promise;
    }
    const expected = units <= SMALL ? this.#smallUs : this.#perItemUs * units;
    const budget = Math.min(this.#maxSpinUs, Math.max(20, 3 * expected + 10));
    const deadline = sentAt + budget;
    // Spin until this request is answered (others answered meanwhile are taken too).
    while (!this.#closed && this.#taken <= seq) {
      if (this.#drain() === 0 && (nowUs() > deadline || this.#checkDead())) break;
    }
    if (!this.#closed && this.inFlight > 0) this.#wait();
    return promise;
  }

  /** Takes every verdict published now; returns how many. */
  #drain(): number {
    let n = 0;
    while (!this.#closed && this.#head < this.#pending.length) {
      const off = this.#ver.peek();
      if (off < 0) break;
      const p = this.#pending[this.#head]!;
      const r = readVerdict(this.#ver, off, { id: p.id, items: p.items });
      this.#head++;
      this.#taken++;
      n++;
      if (!r.ok) {
        // TRUST: after one unreadable verdict the ring's contents cannot be trusted: stop
        // reading; the link restarts the verifier and answers everything in flight.
        this.#closed = true;
        // Worded as the comlink path words it: a verdict for another request, or a malformed one.
        p.resolve({ kind: 'garbage', why: r.error.startsWith('answer for request ') ? r.error : `malformed answer (${r.error})` });
        break;
      }
      this.#ver.release(r.size);
      this.counters.answered++;
      const took = nowUs() - p.sentAt;
      if (p.units <= SMALL) this.#smallUs = 0.9 * this.#smallUs + 0.1 * took;
      else this.#perItemUs = 0.9 * this.#perItemUs + 0.1 * (took / p.units);
      p.resolve(r.parked ? { kind: 'parked' } : { kind: 'verdict', verdict: toVerdict(r.verdict, p.records) });
    }
    if (this.#head > 64 && this.#head * 2 > this.#pending.length) {
      this.#pending.splice(0, this.#head);
      this.#head = 0;
    }
    return n;
  }

  /** Waits for verdicts without blocking the event loop, until none is in flight. */
  #wait(): void {
    if (this.#waiting || this.#closed) return;
    this.#waiting = true;
    this.counters.waits++;
    Atomics.store(this.#ctl, CTL.CORE_PARKED, 1);
    // INVARIANT: "parked" is set before the head is read; the verifier reads "parked" after it
    // stores a new head, so either waitAsync sees the new head or the verifier notifies.
    const head = Atomics.load(this.#ctl, CTL.VER_HEAD);
    const resume = (): void => {
      this.#waiting = false;
      Atomics.store(this.#ctl, CTL.CORE_PARKED, 0);
      this.#drain();
      if (this.#checkDead()) return;
      if (!this.#closed && this.inFlight > 0) this.#wait();
    };
    if (this.#ver.peek() >= 0) {
      queueMicrotask(resume);
      return;
    }
    const w = waitAsync(this.#ctl, CTL.VER_HEAD, head);
    if (w.async) void w.value.then(resume);
    else queueMicrotask(resume);
  }
}

/**
 * The protocol verdict of a checked packed one. Items expand on first read: their reasons
 * are the templates around the sites of the core's own records, so nothing the verifier
 * sent is read twice, and a batch whose items nobody reads costs no object per item.
 */
function toVerdict(p: PackedVerdict, records: PatchRecords | undefined): Verdict {
  const v = { v: PROTOCOL_VERSION, id: p.id, ok: p.ok, reason: p.reason } as { -readonly [K in keyof Verdict]: Verdict[K] };
  if (p.items && records) {
    unexpanded.set(v, { items: p.items, records });
    Object.defineProperty(v, 'items', { enumerable: true, configurable: true, get: expandOnRead });
  }
  v.plugins = [...p.plugins];
  return v;
}

/** What {@link expandOnRead} needs, by verdict (no closure per verdict: see pending-request.ts). */
const unexpanded = new WeakMap<object, { items: NonNullable<PackedVerdict['items']>; records: PatchRecords }>();

/** The `items` getter of a verdict from the ring: expands once, then becomes a plain property. */
function expandOnRead(this: Verdict): Verdict['items'] {
  const st = unexpanded.get(this);
  const value = st ? expandItems(st.items, (i) => st.records.siteHex(i)) : [];
  unexpanded.delete(this);
  Object.defineProperty(this, 'items', { value, enumerable: true, configurable: true, writable: true });
  return value;
}
