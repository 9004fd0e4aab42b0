/**
 * One verifier worker thread as the link holds it: the thread, its comlink proxy, its
 * verification ring (when the link uses one), whether it is ready, and the requests in
 * flight on it.
 */
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint, { type NodeEndpoint } from 'comlink/dist/esm/node-adapter.mjs';
import { VERIFIER_WORKER_ENTRY, type InitResult, type VerifierWorkerApi, type WorkerInit } from '../../shared/worker-api.ts';
import { validateVerdict, type VerifyRequest } from '../../shared/protocol.ts';
import { RING_DEFAULTS, RingChannel, type RingOptions } from './ring-channel.ts';
import type { InFlight } from './pending-request.ts';
import { DEFAULT_CEILING_MS, DEFAULT_NO_PROGRESS_MS, Watchdog, type Watched, type WatchdogBounds } from './watchdog.ts';

/** A started worker. */
export class WorkerHandle {
  readonly worker: Worker;
  readonly api: Comlink.Remote<VerifierWorkerApi>;
  /**
   * The verification ring to this worker, once the worker serves it; undefined without one
   * (the link's transport is comlink, or the worker could not attach it).
   */
  ring: RingChannel | undefined;
  /** Resolves once `init` answered; with the error if it refused or the worker died first. */
  readonly #init: Promise<InitResult>;
  /** Replays of state-changing requests, in order; false once one failed. */
  #replays: Promise<boolean> = Promise.resolve(true);
  /** Replays queued and not finished, and whether init (with the ring) succeeded. */
  #replaysPending = 0;
  #initOk = false;
  /** Requests in flight on this worker, oldest first (each fails closed if the worker dies). */
  readonly inflight = new Set<InFlight & Watched>();
  /** The worker's fail-closed watchdog (watchdog.ts): no progress, or the per-request ceiling. */
  readonly watchdog: Watchdog;
  #dead: string | undefined;
  readonly #onDeath: Array<(why: string) => void> = [];

  /**
   * Starts the worker with `init`; with `ring`, a verification ring beside comlink, bounded to
   * `maxInFlight` requests (the worker attaches it before it counts as ready). Once the
   * worker runs, its init (keyring, manifest, plugin modules) has `initTimeoutMs`: a plugin
   * module that loops while it is imported, or never finishes loading, ends the worker and
   * the init fails naming the bound, instead of hanging whoever waits for the verifier.
   * Requests are watched by a {@link Watchdog} with `bounds`, whose progress word the worker
   * gets with its thread (workerData).
   */
  constructor(
    init: WorkerInit,
    ring?: RingOptions,
    maxInFlight = 256,
    initTimeoutMs = 20_000,
    bounds: WatchdogBounds = { noProgressMs: DEFAULT_NO_PROGRESS_MS, ceilingMs: DEFAULT_CEILING_MS },
  ) {
    this.watchdog = new Watchdog(bounds, this.inflight, (why) => this.markDead(why));
    this.worker = new Worker(VERIFIER_WORKER_ENTRY, { workerData: { progress: this.watchdog.buffer } });
    // Every control-plane post rings the ring's doorbell: a worker whose ring loop spins or is
    // parked in a blocking Atomics.wait serves its message port only when told to.
    const ep = nodeEndpoint(this.worker as unknown as NodeEndpoint);
    const post = ep.postMessage;
    ep.postMessage = (message, transfer) => {
      post(message, transfer);
      this.#doorbell?.control();
    };
    this.api = Comlink.wrap<VerifierWorkerApi>(ep);
    const died = new Promise<InitResult>((resolve) => {
      this.onDeath((why) => resolve({ ok: false, error: why }));
    });
    this.worker.once('error', (e) => this.markDead(`worker crashed: ${e.message}`));
    this.worker.once('exit', (code) => this.markDead(`worker exited with code ${code}`));
    // The worker keeps the process alive only while something waits on it (init, replays,
    // requests in flight); an idle verifier does not stop the process from exiting.
    this.hold();
    // The first answer comes once the worker's code is loaded (seconds on a busy host, not
    // counted against the bound); from then on, init is bounded.
    const initCall = this.api.stats().then((): Promise<InitResult> => {
      const timer = setTimeout(
        () =>
          this.markDead(
            `the verifier's init did not finish within ${initTimeoutMs} ms (a plugin module that loops or never finishes loading?); the worker was stopped`,
          ),
        initTimeoutMs,
      );
      return this.api.init(init).finally(() => clearTimeout(timer));
    });
    this.#init = Promise.race([initCall.catch((e: unknown) => ({ ok: false as const, error: `init failed: ${String(e)}` })), died])
      .then(async (r) => {
        if (r.ok && ring) await this.#attachRing(ring, maxInFlight);
        this.#initOk = r.ok;
        return r;
      })
      .finally(() => this.release());
  }

  #holds = 0;
  /** The ring whose doorbell comlink posts ring: set before the worker is asked to serve it. */
  #doorbell: RingChannel | undefined;

  /**
   * Makes the ring and has the worker serve it. A ring the worker refuses is dropped: this
   * worker is then reached over comlink only, which decides the same way.
   */
  async #attachRing(options: RingOptions, maxInFlight: number): Promise<void> {
    let channel: RingChannel;
    try {
      channel = new RingChannel(options, maxInFlight);
    } catch {
      return;
    }
    const timing = { spinMs: options.workerSpinMs ?? RING_DEFAULTS.workerSpinMs, sliceMs: options.workerSliceMs ?? RING_DEFAULTS.workerSliceMs };
    this.#doorbell = channel;
    const refused = await this.api.attachRing(channel.layout, timing).catch((e: unknown) => `attach failed: ${String(e)}`);
    if (refused === undefined && this.#dead === undefined) {
      channel.onDead((why) => this.markDead(why));
      this.ring = channel;
    }
  }

  /** Makes one call on the worker, keeping the process alive until it answers. */
  async call<T>(f: (api: Comlink.Remote<VerifierWorkerApi>) => Promise<T>): Promise<T> {
    this.hold();
    try {
      return await f(this.api);
    } finally {
      this.release();
    }
  }

  /** Something waits on the worker: keep the process alive. */
  hold(): void {
    if (this.#holds++ === 0 && this.#dead === undefined) this.worker.ref();
  }

  /** One waiter fewer; when none is left the worker no longer keeps the process alive. */
  release(): void {
    if (--this.#holds === 0) this.worker.unref();
  }

  /**
   * Resolves when the worker may serve: init accepted and every queued replay allowed.
   * Resolves (never rejects) with the problem otherwise.
   */
  get ready(): Promise<InitResult> {
    return this.#init.then(async (r) => {
      if (!r.ok) return r;
      return (await this.#replays) ? r : { ok: false as const, error: this.#dead ?? 'journal replay failed' };
    });
  }

  /**
   * True when {@link ready} would resolve ok now: init accepted, no replay queued, alive. Lets
   * the link skip the promise chain on the hot path.
   */
  get readyNow(): boolean {
    return this.#initOk && this.#replaysPending === 0 && this.#dead === undefined;
  }

  /**
   * Queues state-changing requests to be decided again by this worker, in order after every
   * earlier queued one, so a spare learns the same modules and images as the active worker.
   * A replay that is not allowed kills the worker (its state would differ).
   */
  replay(requests: readonly VerifyRequest[]): void {
    this.#queue(async () => {
      for (const req of requests) {
        const raw = await this.call((api) => api.verify(req)).catch(() => undefined);
        const v = validateVerdict(raw);
        if (!v.ok || !v.verdict.ok) {
          this.markDead(`journal replay of request ${req.id} (${req.kind}) was not allowed`);
          return false;
        }
      }
      return true;
    });
  }

  /**
   * Queues an import of a VM's exported state (VerifierLink.importVm: a forked VM's), in
   * order with the replays, so a spare starts from the same state as the active worker. A
   * worker that refuses it is killed, as one that refuses a replay.
   */
  importState(vm: string, state: Uint8Array): void {
    this.#queue(async () => {
      const refused = await this.call((api) => api.importVm(vm, state)).catch((e: unknown) => `the worker did not answer: ${String(e)}`);
      if (refused === undefined) return true;
      this.markDead(`the import of VM ${vm}'s state was refused: ${refused}`);
      return false;
    });
  }

  /** Runs `step` after init and every earlier queued step, unless one of them failed; {@link ready} waits for it. */
  #queue(step: () => Promise<boolean>): void {
    this.hold();
    this.#replaysPending++;
    this.#replays = this.#replays
      .then(async (okSoFar) => {
        if (!okSoFar || (await this.#init).ok === false) return false;
        return step();
      })
      .finally(() => {
        this.#replaysPending--;
        this.release();
      });
  }

  /** Why the worker is dead, or undefined while it lives. */
  get dead(): string | undefined {
    return this.#dead;
  }

  /** Calls `f` once when the worker dies (immediately if it already has). */
  onDeath(f: (why: string) => void): void {
    if (this.#dead !== undefined) f(this.#dead);
    else this.#onDeath.push(f);
  }

  /**
   * Marks the worker dead: every request in flight gets its fail-closed answer, exactly once,
   * and the thread is terminated.
   */
  markDead(why: string): void {
    if (this.#dead !== undefined) return;
    this.#dead = why;
    this.watchdog.stop();
    this.ring?.close();
    for (const r of [...this.inflight]) r.fail(why);
    this.inflight.clear();
    for (const f of this.#onDeath.splice(0)) f(why);
    this.api[Comlink.releaseProxy]();
    void this.worker.terminate();
  }

  /** Terminates the worker and waits for it to exit, at most `timeoutMs`. */
  async dispose(timeoutMs: number): Promise<boolean> {
    // The wait itself keeps the process alive (a ref'd timer), so a dispose always finishes.
    let timer: NodeJS.Timeout | undefined;
    const exited = new Promise<boolean>((resolve) => {
      if (this.worker.threadId === -1) resolve(true);
      this.worker.once('exit', () => resolve(true));
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    this.markDead('link disposed');
    const r = await exited;
    clearTimeout(timer);
    return r;
  }
}
