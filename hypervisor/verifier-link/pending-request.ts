/**
 * One request waiting for its verdict on one worker: the link's fail-closed rules in one
 * place, for comlink and ring answers alike.
 *
 * - The first answer wins; every later one (a verdict after a timeout, a death after a
 *   verdict) is ignored: exactly one answer per request.
 * - No progress for the no-progress bound, or no answer within the per-request ceiling: the
 *   worker's watchdog (watchdog.ts) ends the worker, and its handle fails this request.
 * - An answer that is not a well-formed verdict for this request: denied, worker killed.
 * - The worker dies first: denied (its handle calls {@link fail} on everything in flight).
 *
 * It is a class, not a handful of closures, on purpose: under tsx every named closure has its
 * name set when it is made, which cost microseconds per request on the ring's hot path.
 */
import { validateVerdict, type Verdict } from '../../shared/protocol.ts';
import type { RingAnswer } from './ring-channel.ts';
import type { Watched } from './watchdog.ts';
import type { WorkerHandle } from './worker-handle.ts';

/** What a worker handle can do to a request in flight on it. */
export interface InFlight {
  /** Ends the request with a fail-closed answer (`why` names what happened). */
  fail(why: string): void;
}

/** A request in flight. */
export class PendingRequest implements InFlight, Watched {
  #done = false;
  /** When it started, on the worker watchdog's clock (for the per-request ceiling). */
  readonly since: number;

  /**
   * Starts waiting: registers with `w` (which keeps the process alive meanwhile, and whose
   * watchdog now watches it). `failClosed(id, why)` makes the link's denial (and counts it).
   */
  constructor(
    private readonly w: WorkerHandle,
    readonly id: number,
    private readonly resolve: (v: Verdict) => void,
    private readonly failClosed: (id: number, why: string) => Verdict,
  ) {
    this.since = w.watchdog.stamp();
    w.inflight.add(this);
    w.hold();
  }

  /** Settles with `v` unless already settled. */
  finish(v: Verdict): void {
    if (this.#done) return;
    this.#done = true;
    this.w.inflight.delete(this);
    this.w.release();
    this.resolve(v);
  }

  fail(why: string): void {
    if (!this.#done) this.finish(this.failClosed(this.id, why));
  }

  /** The worker answered something unusable: deny, and kill it. */
  garbage(why: string): void {
    this.fail(why);
    this.w.markDead(`answered garbage: ${why}`);
  }

  /** The call itself failed (the worker went away under it). */
  failed(e: unknown): void {
    this.fail(`call failed: ${String(e)}`);
    this.w.markDead(`call failed: ${String(e)}`);
  }

  /** A comlink answer: shape-checked here. */
  fromComlink(raw: unknown): void {
    const v = validateVerdict(raw);
    if (!v.ok || v.verdict.id !== this.id) {
      this.garbage(v.ok ? `answer for request ${v.verdict.id}, not ${this.id}` : `malformed answer (${v.error})`);
      return;
    }
    // TRUST: `retryable` and `failClosed` are the link's word only; a worker cannot claim them.
    const { retryable: _retryable, failClosed: _failClosed, ...verdict } = v.verdict;
    this.finish(verdict);
  }

  /** A ring answer: its records were checked as they were read; a parked verdict is collected over comlink. */
  fromRing(a: RingAnswer): void {
    if (a.kind === 'verdict') this.finish(a.verdict);
    else if (a.kind === 'garbage') this.garbage(a.why);
    else
      this.w.api.collect(this.id).then(
        (raw) => this.fromComlink(raw),
        (e: unknown) => this.failed(e),
      );
  }
}
