/**
 * The core's only way to the verifier VM: requests go out as protocol messages over comlink,
 * verdicts come back and are shape-checked.
 *
 * Fail closed. A verifier that times out, crashes, or answers garbage (a verdict of the
 * wrong shape or for another request) makes the request denied with reason
 * {@link VERIFIER_UNAVAILABLE}; the worker is killed; every other request in flight on it
 * gets the same answer, exactly once; the warm spare takes over, and a new spare starts.
 *
 * State survives failover: requests that changed the verifier's per-VM state and were
 * allowed (kernel-text, module-load, module-unload, code-load, and text patches that
 * installed kprobes) are kept in a journal and replayed to every spare before it may serve,
 * so the spare knows the same modules and images as the worker it replaces.
 *
 * Backpressure. One link may serve many VMs (each request names its VM; the worker keeps
 * per-VM state). At most `maxInFlight` requests wait on the worker at once; one more is not
 * queued but answered at once with a retryable refusal ({@link busyVerdict}: `ok: false`,
 * `retryable: true`, reason "verifier busy: ..."), which the core turns into -KVM_EAGAIN.
 * Module unloads are exempt: the core has already taken the permissions away, and the
 * verifier must hear of it to stay in step.
 */
import { PROTOCOL_VERSION, VERIFIER_UNAVAILABLE, busyVerdict, denial, validateVerdict, type Verdict, type VerifyRequest } from '../../shared/protocol.ts';
import type { InjectedFault, WorkerInit } from '../../verifier-vm/worker-api.ts';
import { WorkerHandle } from './worker-handle.ts';

/** A request without the fields the link fills in (version and id). */
export type OutgoingRequest = VerifyRequest extends infer R ? (R extends VerifyRequest ? Omit<R, 'v' | 'id'> : never) : never;

/** How the link runs. */
export interface VerifierLinkOptions {
  /** The worker configuration (keyring, manifest, plugins). */
  readonly init: WorkerInit;
  /** How long one request may take before it is denied and the worker killed (default 5000 ms). */
  readonly timeoutMs?: number;
  /** Keep a spare worker warm (default true). */
  readonly spare?: boolean;
  /** How long `dispose` waits for workers to exit (default 10000 ms). */
  readonly disposeTimeoutMs?: number;
  /**
   * Most requests in flight at once, over every VM the link serves (default
   * {@link DEFAULT_MAX_IN_FLIGHT}); one more gets a retryable "verifier busy" verdict at once.
   */
  readonly maxInFlight?: number;
}

/** Default bound on requests in flight. */
export const DEFAULT_MAX_IN_FLIGHT = 256;

/** Kinds never refused for backpressure (see the file comment). */
const BOUND_EXEMPT = new Set<VerifyRequest['kind']>(['module-unload']);

/** Counters. */
export interface LinkStats {
  requests: number;
  failClosed: number;
  restarts: number;
  /** Milliseconds from the last worker death to the next verdict served by its successor. */
  lastFailoverMs: number | undefined;
  /** Requests refused at once because `maxInFlight` were in flight (retryable). */
  busy: number;
  /** Most requests ever in flight at once. */
  peakInFlight: number;
}

const STATEFUL_KINDS = new Set<VerifyRequest['kind']>(['kernel-text', 'module-load', 'module-unload', 'code-load', 'text-patch', 'kernel-manifest', 'restore-state']);

/** The link. */
export class VerifierLink {
  readonly #opts: VerifierLinkOptions;
  #active: WorkerHandle;
  #spare: WorkerHandle | undefined;
  #nextId = 1;
  #disposed = false;
  #deathAt: number | undefined;
  readonly #journal: VerifyRequest[] = [];
  readonly #maxInFlight: number;
  #inFlight = 0;
  readonly stats: LinkStats = { requests: 0, failClosed: 0, restarts: 0, lastFailoverMs: undefined, busy: 0, peakInFlight: 0 };

  private constructor(opts: VerifierLinkOptions, active: WorkerHandle) {
    this.#opts = opts;
    this.#active = active;
    this.#maxInFlight = opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  }

  /** Requests waiting for their verdict now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** The bound on {@link inFlight}. */
  get maxInFlight(): number {
    return this.#maxInFlight;
  }

  /**
   * Starts the verifier (and its spare) and waits until it is ready. Rejects with the
   * worker's own message when it refuses its configuration (bad keyring, refused manifest,
   * unknown plugin): a VM cannot start without a verifier.
   */
  static async start(opts: VerifierLinkOptions): Promise<VerifierLink> {
    if (opts.maxInFlight !== undefined && (!Number.isSafeInteger(opts.maxInFlight) || opts.maxInFlight < 1)) {
      throw new RangeError(`maxInFlight must be a positive integer, got ${opts.maxInFlight}`);
    }
    const first = new WorkerHandle(opts.init);
    const r = await first.ready;
    if (!r.ok) {
      await first.dispose(opts.disposeTimeoutMs ?? 2000);
      throw new Error(`the verifier VM refused to start: ${r.error}`);
    }
    const link = new VerifierLink(opts, first);
    link.#watch(first);
    if (opts.spare ?? true) link.#startSpare();
    return link;
  }

  /** Plugins and manifest the active worker reported at start. */
  async info(): Promise<Awaited<WorkerHandle['ready']>> {
    return this.#active.ready;
  }

  /**
   * Asks the verifier. Never rejects: a verifier that cannot answer yields a denial with
   * reason "verifier unavailable: ...", and one beyond `maxInFlight` a retryable "verifier
   * busy: ..." refusal. Exactly one verdict per call.
   */
  async verify(request: OutgoingRequest): Promise<Verdict> {
    const id = this.#nextId++;
    const msg = { ...request, v: PROTOCOL_VERSION, id } as VerifyRequest;
    this.stats.requests++;
    if (this.#disposed) return this.#failClosed(id, 'the link was disposed');
    // INVARIANT: the bound is checked and the slot taken before the first await, so callers
    // racing on the same tick cannot all slip under it.
    if (this.#inFlight >= this.#maxInFlight && !BOUND_EXEMPT.has(msg.kind)) {
      this.stats.busy++;
      return busyVerdict(id, `${this.#inFlight} requests in flight, the bound is ${this.#maxInFlight}; retry later`);
    }
    this.#inFlight++;
    this.stats.peakInFlight = Math.max(this.stats.peakInFlight, this.#inFlight);
    try {
      return await this.#verifyQueued(msg);
    } finally {
      this.#inFlight--;
    }
  }

  async #verifyQueued(msg: VerifyRequest): Promise<Verdict> {
    const id = msg.id;
    const w = await this.#serving();
    if (!w) return this.#failClosed(id, 'no verifier worker could be started');
    const verdict = await this.#ask(w, msg);
    if (this.#deathAt !== undefined && !verdict.reason.startsWith(VERIFIER_UNAVAILABLE)) {
      this.stats.lastFailoverMs = performance.now() - this.#deathAt;
      this.#deathAt = undefined;
    }
    if (verdict.ok && STATEFUL_KINDS.has(msg.kind)) {
      this.#journal.push(msg);
      const spare = this.#spare;
      if (spare && !spare.dead) spare.replay([msg]);
    }
    return verdict;
  }

  /** Resets the per-VM state of `vm` in the verifier and in the journal (the VMM reset the VM). */
  async resetVm(vm: string): Promise<void> {
    for (let i = this.#journal.length - 1; i >= 0; i--) if (this.#journal[i]!.vm === vm) this.#journal.splice(i, 1);
    for (const w of [this.#active, this.#spare]) {
      if (w && !w.dead) await w.call((api) => api.resetVm(vm)).catch(() => undefined);
    }
  }

  /**
   * The per-VM state of `vm` in the active worker, as plain data (hibernation, migration), or
   * undefined when it has none or no worker answers.
   */
  async exportVm(vm: string): Promise<unknown> {
    const w = await this.#serving();
    return w ? w.call((api) => api.exportVm(vm)).catch(() => undefined) : undefined;
  }

  /** Arms a fault in the active worker (needs `faultInjection` in the init). */
  async injectFault(fault: InjectedFault): Promise<boolean> {
    const w = await this.#serving();
    return w ? w.call((api) => api.inject(fault)).catch(() => false) : false;
  }

  /** Statistics of the active worker's engine. */
  async workerStats(): Promise<unknown> {
    const w = await this.#serving();
    return w ? w.call((api) => api.stats()).catch(() => undefined) : undefined;
  }

  /** Stops both workers; requests still in flight get their fail-closed answer. */
  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    const t = this.#opts.disposeTimeoutMs ?? 10_000;
    const results = await Promise.all([this.#active.dispose(t), this.#spare?.dispose(t) ?? Promise.resolve(true)]);
    if (results.some((r) => !r)) throw new Error(`a verifier worker did not exit within ${t} ms`);
  }

  #ask(w: WorkerHandle, msg: VerifyRequest): Promise<Verdict> {
    const timeoutMs = this.#opts.timeoutMs ?? 5000;
    return new Promise<Verdict>((resolve) => {
      let done = false;
      const finish = (v: Verdict): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        w.inflight.delete(failInflight);
        w.release();
        resolve(v);
      };
      const failInflight = (why: string): void => finish(this.#failClosed(msg.id, why));
      const timer = setTimeout(() => {
        failInflight(`no answer within ${timeoutMs} ms`);
        w.markDead(`timed out after ${timeoutMs} ms`);
      }, timeoutMs);
      w.inflight.add(failInflight);
      w.hold();
      w.api.verify(msg).then(
        (raw) => {
          const v = validateVerdict(raw);
          if (!v.ok || v.verdict.id !== msg.id) {
            const why = v.ok ? `answer for request ${v.verdict.id}, not ${msg.id}` : `malformed answer (${v.error})`;
            failInflight(why);
            w.markDead(`answered garbage: ${why}`);
          } else {
            // TRUST: `retryable` is the link's word only; a worker cannot claim it.
            const { retryable: _ignored, ...verdict } = v.verdict;
            finish(verdict);
          }
        },
        (e: unknown) => {
          failInflight(`call failed: ${String(e)}`);
          w.markDead(`call failed: ${String(e)}`);
        },
      );
    });
  }

  #failClosed(id: number, why: string): Verdict {
    this.stats.failClosed++;
    return denial(id, `${VERIFIER_UNAVAILABLE}: ${why}`);
  }

  /** The worker that serves now: the active one, or the spare promoted after a death. */
  async #serving(): Promise<WorkerHandle | undefined> {
    for (let attempt = 0; attempt < 3; attempt++) {
      const w = this.#active;
      const r = await w.ready;
      if (r.ok && !w.dead) return w;
      if (w === this.#active) this.#replaceActive();
    }
    return undefined;
  }

  #watch(w: WorkerHandle): void {
    w.onDeath(() => {
      if (this.#disposed) return;
      if (w === this.#active) {
        this.#deathAt = performance.now();
        this.#replaceActive();
      } else if (w === this.#spare) {
        this.#spare = undefined;
        this.#startSpare();
      }
    });
  }

  #replaceActive(): void {
    if (this.#disposed) return;
    this.stats.restarts++;
    const spare = this.#spare;
    this.#spare = undefined;
    if (spare && !spare.dead) {
      this.#active = spare;
    } else {
      this.#active = this.#startWorker();
    }
    if (this.#opts.spare ?? true) this.#startSpare();
  }

  #startSpare(): void {
    if (this.#disposed) return;
    this.#spare = this.#startWorker();
  }

  /** Starts a worker whose readiness includes replaying the journal. */
  #startWorker(): WorkerHandle {
    const w = new WorkerHandle(this.#opts.init);
    w.replay([...this.#journal]);
    this.#watch(w);
    return w;
  }
}
