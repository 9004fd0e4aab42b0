/**
 * The link's fail-closed rule for one verifier worker: a watchdog that measures progress, not
 * elapsed time.
 *
 * Precision: both bounds are checked on the watchdog's tick (a quarter of the no-progress
 * bound, at most 250 ms), so a stall is cut between the bound and the bound plus two ticks
 * after it began, and the ceiling is measured from a request's start to within one tick.
 *
 * The worker bumps a shared progress word as it works (shared/progress.ts: between plugin
 * calls, per chunk of batch items, per touch-up pass and chunk of pages, per relocation pass
 * and signature check). The watchdog samples that word on a timer, one timer per worker,
 * running only while a request is in flight on it. The worker is declared dead, and every
 * request in flight on it denied "verifier unavailable", when
 *
 * - a request is in flight and the word has not moved for `noProgressMs` (a plugin that loops,
 *   a promise that never settles, a thread that is stuck), or
 * - the oldest request in flight has been waiting for `ceilingMs`, progress or not (a plugin
 *   that keeps reporting progress and never answers).
 *
 * A busy host slows the worker down but does not stop its word moving, so it is not cut: the
 * bound is on the longest stretch of verifier work between two reports (milliseconds of CPU
 * even for the cold first kernel-text check), not on a whole request.
 *
 * INVARIANT: the only per-request cost is adding the request to the worker's set and reading
 * the watchdog's coarse clock; no timer is made or cleared per request (the ring's hot path).
 */
import { PROGRESS_BYTES } from '../../shared/progress.ts';

/** Default of the no-progress bound (ms): how long a request in flight may see no progress. */
export const DEFAULT_NO_PROGRESS_MS = 2000;

/** Default of the absolute per-request ceiling (ms), whatever progress is reported. */
export const DEFAULT_CEILING_MS = 120_000;

/** A request the watchdog watches: when it started, on the watchdog's clock. */
export interface Watched {
  readonly since: number;
}

/** The watchdog's bounds. */
export interface WatchdogBounds {
  /** Longest a request in flight may see no progress (ms). */
  readonly noProgressMs: number;
  /** Longest one request may wait, progress or not (ms). */
  readonly ceilingMs: number;
}

/** One worker's watchdog. */
export class Watchdog {
  /** The progress buffer, handed to the worker when its thread starts. */
  readonly buffer = new SharedArrayBuffer(PROGRESS_BYTES);
  readonly #word = new Int32Array(this.buffer, 0, 1);
  readonly #bounds: WatchdogBounds;
  readonly #period: number;
  #timer: NodeJS.Timeout | undefined;
  /** The word's value at the last change seen, and when it was seen. */
  #seen = 0;
  #since = 0;
  /** The coarse clock requests are stamped with: the last tick's time, or the arming time. */
  #clock = 0;
  /** A request came after an idle spell: the next tick restarts the no-progress clock. */
  #fresh = false;

  /**
   * `inflight` is the worker's set of requests in flight (oldest first: a Set keeps insertion
   * order); `expire(why)` ends the worker and fails them all.
   */
  constructor(
    bounds: WatchdogBounds,
    private readonly inflight: ReadonlySet<Watched>,
    private readonly expire: (why: string) => void,
  ) {
    this.#bounds = bounds;
    // A stall is seen within a quarter of the bound after it ends (at most 250 ms late).
    this.#period = Math.max(5, Math.min(250, Math.floor(bounds.noProgressMs / 4)));
  }

  /**
   * The time to stamp a request with (the coarse clock); call it just before the request
   * joins `inflight`. The first request after an idle spell starts the no-progress clock
   * afresh (and the timer, if it had stopped).
   */
  stamp(): number {
    if (this.inflight.size === 0) {
      if (this.#timer === undefined) {
        this.#clock = performance.now();
        this.#timer = setInterval(Watchdog.#tick, this.#period, this);
        // The requests in flight hold the worker (and so the process); the timer alone does not.
        this.#timer.unref();
      }
      // The no-progress clock starts afresh at the next tick (no clock read per request).
      this.#fresh = true;
    }
    return this.#clock;
  }

  /** Stops the timer for good (the worker is dead). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  static #tick(w: Watchdog): void {
    if (w.inflight.size === 0) {
      w.stop();
      return;
    }
    const now = performance.now();
    w.#clock = now;
    const count = Atomics.load(w.#word, 0);
    if (w.#fresh) {
      w.#fresh = false;
      w.#seen = count;
      w.#since = now;
    } else if (count !== w.#seen) {
      w.#seen = count;
      w.#since = now;
    } else if (now - w.#since >= w.#bounds.noProgressMs) {
      w.stop();
      w.expire(`the verifier made no progress for ${Math.round(now - w.#since)} ms (bound ${w.#bounds.noProgressMs} ms)`);
      return;
    }
    const oldest = w.inflight.values().next().value as Watched;
    if (now - oldest.since >= w.#bounds.ceilingMs) {
      w.stop();
      w.expire(`a request was not answered within the ${w.#bounds.ceilingMs} ms ceiling`);
    }
  }
}
