/**
 * The core's only way to the verifier VM: requests go out as protocol messages over comlink,
 * verdicts come back and are shape-checked.
 *
 * Fail closed, on lack of progress rather than by the clock (watchdog.ts). The worker reports
 * progress as it works; a request in flight that sees none for `timeoutMs` (default
 * {@link DEFAULT_NO_PROGRESS_MS}), or is not answered within the absolute ceiling
 * `ceilingMs` (default {@link DEFAULT_CEILING_MS}), ends the worker. Such a verifier, one
 * that crashes, or one that answers garbage (a verdict of the wrong shape or for another
 * request) makes the request denied with reason
 * {@link VERIFIER_UNAVAILABLE}; the worker is killed; every other request in flight on it
 * gets the same answer, exactly once; the warm spare takes over, and a new spare starts.
 *
 * State survives failover: requests that changed the verifier's per-VM state and were
 * allowed (kernel-text, module-load, module-unload, code-load, and text patches that
 * installed kprobes) are kept in a journal and replayed to every spare before it may serve,
 * so the spare knows the same modules and images as the worker it replaces. A VM forked from
 * a booted one starts from its parent's exported state ({@link VerifierLink.importVm}), which
 * every spare takes before the journal.
 *
 * Backpressure. One link may serve many VMs (each request names its VM; the worker keeps
 * per-VM state). At most `maxInFlight` requests wait on the worker at once; one more is not
 * queued but answered at once with a retryable refusal ({@link busyVerdict}: `ok: false`,
 * `retryable: true`, reason "verifier busy: ..."), which the core turns into -KVM_EAGAIN.
 * Module unloads are exempt: the core has already taken the permissions away, and the
 * verifier must hear of it to stay in step.
 *
 * Transport. With `transport: 'ring'` (the default) every worker also serves a verification
 * ring (ring-channel.ts, shared/ring/): text-patch batches and module unloads go there as
 * fixed-size records, everything else (module images, kernel text, code images, permission
 * changes) and whatever the ring cannot take at the moment goes over comlink. Both paths
 * give the same verdicts and fail closed the same way: no progress, the ceiling, a crash or an
 * unreadable answer denies the request ("verifier unavailable"), once, and the spare takes over.
 */
import { PROTOCOL_VERSION, busyVerdict, failClosedVerdict, type RequestBody, type Verdict, type VerifyRequest } from '../../shared/protocol.ts';
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import type { InjectedFault, WorkerInit } from '../../shared/worker-api.ts';
import type { PatchRecords } from '../../shared/ring/patch-records.ts';
import { Job } from './job.ts';
import { WorkerHandle } from './worker-handle.ts';
import { PendingRequest } from './pending-request.ts';
import type { RingAnswer, RingOptions } from './ring-channel.ts';
import { DEFAULT_CEILING_MS, DEFAULT_NO_PROGRESS_MS, type WatchdogBounds } from './watchdog.ts';

export { DEFAULT_CEILING_MS, DEFAULT_NO_PROGRESS_MS };

/** A request without the fields the link fills in (version and id). */
export type OutgoingRequest = RequestBody;

/** How the link runs. */
export interface VerifierLinkOptions {
  /** The worker configuration (keyring, manifest, plugins). */
  readonly init: WorkerInit;
  /**
   * The no-progress bound: how long a request in flight may see no progress from the verifier
   * before it is denied and the worker killed (default {@link DEFAULT_NO_PROGRESS_MS}). A busy
   * host slows progress without stopping it; a plugin that loops or never settles stops it.
   */
  readonly timeoutMs?: number;
  /**
   * The absolute ceiling on one request, progress or not (default {@link DEFAULT_CEILING_MS},
   * or `timeoutMs` when that is longer).
   */
  readonly ceilingMs?: number;
  /**
   * How long a running worker's init (keyring, manifest, plugin modules) may take before the
   * worker is stopped and the init fails (default 2 x `timeoutMs`, at least 20 s).
   */
  readonly initTimeoutMs?: number;
  /** Keep a spare worker warm (default true). */
  readonly spare?: boolean;
  /** How long `dispose` waits for workers to exit (default 10000 ms). */
  readonly disposeTimeoutMs?: number;
  /**
   * Most requests in flight at once, over every VM the link serves (default
   * {@link DEFAULT_MAX_IN_FLIGHT}); one more gets a retryable "verifier busy" verdict at once.
   */
  readonly maxInFlight?: number;
  /**
   * The data plane: `ring` (default) sends the kinds the verification ring carries
   * (text-patch, module-unload) over a SharedArrayBuffer ring beside comlink; `comlink` sends
   * everything over comlink.
   */
  readonly transport?: 'ring' | 'comlink';
  /** Ring sizes and waiting (ring-channel.ts {@link RingOptions}). */
  readonly ring?: RingOptions;
}

/** Default bound on requests in flight. */
export const DEFAULT_MAX_IN_FLIGHT = 256;

/**
 * How long after a failover the link waits before it starts the next spare (ms): the promoted
 * worker first serves the requests that waited on the failover, without a new thread starting
 * beside it on the same CPUs.
 */
const SPARE_RESTART_DELAY_MS = 25;

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
  /** Requests sent over the verification ring (the others went over comlink). */
  viaRing: number;
}

const STATEFUL_KINDS = new Set<VerifyRequest['kind']>([
  'kernel-text',
  'module-load',
  'module-unload',
  'module-init-free',
  'code-load',
  'text-patch',
  'kernel-manifest',
  'restore-state',
]);

/** The link. */
export class VerifierLink {
  readonly #opts: VerifierLinkOptions;
  #active: WorkerHandle;
  #spare: WorkerHandle | undefined;
  #nextId = 1;
  #disposed = false;
  #deathAt: number | undefined;
  readonly #journal: VerifyRequest[] = [];
  /**
   * Per-VM states the VMM imported (a forked VM's, {@link importVm}): every worker started
   * from now on takes them before the journal, which holds only what came after.
   */
  readonly #imported = new Map<string, Uint8Array>();
  /** CPUs online per VM, as the VMM last said: given to every worker started from now on. */
  readonly #onlineCpus = new Map<string, number>();
  readonly #maxInFlight: number;
  #inFlight = 0;
  /** Which allowed text-patch requests change the verifier's state (its init answer says). */
  /** Which allowed text-patch batches go into the journal: all, or those holding an item of these kinds (PATCH_KIND values). */
  #statefulTextPatch: 'always' | ReadonlySet<number> = 'always';
  #spareTimer: NodeJS.Timeout | undefined;
  readonly stats: LinkStats = { requests: 0, failClosed: 0, restarts: 0, lastFailoverMs: undefined, busy: 0, peakInFlight: 0, viaRing: 0 };

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
    for (const [name, v] of [
      ['timeoutMs', opts.timeoutMs],
      ['ceilingMs', opts.ceilingMs],
    ] as const) {
      if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new RangeError(`${name} must be a positive number of milliseconds, got ${v}`);
    }
    const first = VerifierLink.#newWorker(opts);
    const r = await first.ready;
    if (!r.ok) {
      await first.dispose(opts.disposeTimeoutMs ?? 2000);
      throw new Error(`the verifier VM refused to start: ${r.error}`);
    }
    const link = new VerifierLink(opts, first);
    const stateful = r.statefulTextPatch ?? 'always';
    link.#statefulTextPatch = stateful === 'always' ? 'always' : new Set(stateful.map((k) => PATCH_KIND[k]));
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
    return this.#submit(new Job(id, msg.kind, msg.vm, msg, undefined));
  }

  /**
   * Asks the verifier about a text-patch batch in record form (the core's text-patch path
   * builds these from the guest's batch without an object per item). Same contract and same
   * verdict as {@link verify} with the records' items; the records must not change until the
   * promise settles. Over comlink (or when the ring cannot take it) the items are made from
   * the records.
   */
  async verifyPatches(request: { readonly vm: string; readonly records: PatchRecords }): Promise<Verdict> {
    return this.#submit(new Job(this.#nextId++, 'text-patch', request.vm, undefined, request.records));
  }

  async #submit(job: Job): Promise<Verdict> {
    const id = job.id;
    this.stats.requests++;
    if (this.#disposed) return this.#failClosed(id, 'the link was disposed');
    // INVARIANT: the bound is checked and the slot taken before the first await, so callers
    // racing on the same tick cannot all slip under it.
    if (this.#inFlight >= this.#maxInFlight && !BOUND_EXEMPT.has(job.kind)) {
      this.stats.busy++;
      return busyVerdict(id, `${this.#inFlight} requests in flight, the bound is ${this.#maxInFlight}; retry later`);
    }
    this.#inFlight++;
    this.stats.peakInFlight = Math.max(this.stats.peakInFlight, this.#inFlight);
    try {
      return await this.#verifyQueued(job);
    } finally {
      this.#inFlight--;
    }
  }

  async #verifyQueued(job: Job): Promise<Verdict> {
    const id = job.id;
    const active = this.#active;
    const w = active.readyNow ? active : await this.#serving();
    if (!w) return this.#failClosed(id, 'no verifier worker could be started');
    const verdict = await this.#ask(w, job);
    if (this.#deathAt !== undefined && verdict.failClosed !== true) {
      this.stats.lastFailoverMs = performance.now() - this.#deathAt;
      this.#deathAt = undefined;
    }
    if (
      verdict.ok &&
      STATEFUL_KINDS.has(job.kind) &&
      (job.kind !== 'text-patch' || this.#statefulTextPatch === 'always' || job.hasKindIn(this.#statefulTextPatch))
    ) {
      const msg = job.message();
      this.#journal.push(msg);
      const spare = this.#spare;
      if (spare && !spare.dead) spare.replay([msg]);
    }
    return verdict;
  }

  /**
   * Gives the verifier the per-VM state of `vm` that another verifier exported
   * ({@link exportVm}): a VM forked from a booted one starts with its parent's verified boot,
   * modules and code images, without its requests being decided again. Call it before any
   * request for `vm`. Undefined once the active worker took it (the spare and every later
   * worker take it too), else why not.
   */
  async importVm(vm: string, state: Uint8Array): Promise<string | undefined> {
    if (this.#imported.has(vm) || this.#journal.some((r) => r.vm === vm)) return `the link already holds state for VM ${vm}`;
    const refused = await this.#control((api) => api.importVm(vm, state));
    if (refused !== undefined) return refused;
    this.#imported.set(vm, state);
    const spare = this.#spare;
    if (spare && !spare.dead) spare.importState(vm, state);
    return undefined;
  }

  /** Resets the per-VM state of `vm` in the verifier and in the journal (the VMM reset the VM). */
  async resetVm(vm: string): Promise<void> {
    this.#imported.delete(vm);
    for (let i = this.#journal.length - 1; i >= 0; i--) if (this.#journal[i]!.vm === vm) this.#journal.splice(i, 1);
    for (const w of [this.#active, this.#spare]) {
      if (w && !w.dead) await w.call((api) => api.resetVm(vm)).catch(() => undefined);
    }
  }

  /**
   * Tells the verifier (active and spare) that `online` CPUs of `vm` are online (the VMM's
   * CPU hotplug); workers started later get it in their init. Undefined once the active
   * worker took it, else its reason or that no worker answers.
   */
  async setOnlineCpus(vm: string, online: number): Promise<string | undefined> {
    const r = await this.#control((api) => api.setOnlineCpus(vm, online));
    if (r !== undefined) return r;
    this.#onlineCpus.set(vm, online);
    const spare = this.#spare;
    if (spare && !spare.dead) await spare.call((api) => api.setOnlineCpus(vm, online)).catch(() => undefined);
    return undefined;
  }

  /** A control call on the serving worker that answers undefined when taken, else why not (or that no worker answers). */
  async #control(f: (api: WorkerHandle['api']) => Promise<string | undefined>): Promise<string | undefined> {
    const w = await this.#serving();
    if (!w) return 'no verifier worker could be started';
    return w.call(f).catch((e: unknown) => `the verifier did not answer: ${String(e)}`);
  }

  /**
   * The per-VM state of `vm` in the active worker, as plain data (hibernation, migration), or
   * undefined when it has none or no worker answers.
   */
  async exportVm(vm: string): Promise<unknown> {
    const w = await this.#serving();
    return w ? w.call((api) => api.exportVm(vm)).catch(() => undefined) : undefined;
  }

  /** The same state as the verifier encodes it for a state image (its `verifier` section), or undefined when no worker answers. */
  async exportVmSection(vm: string): Promise<Uint8Array | undefined> {
    const w = await this.#serving();
    return w ? w.call((api) => api.exportVmSection(vm)).catch(() => undefined) : undefined;
  }

  /**
   * Resolves true once a warm spare is ready to take over (journal replayed), false when the
   * link keeps none or it could not start. The benchmark waits on it between failovers.
   */
  async standby(): Promise<boolean> {
    while (this.#spare === undefined && this.#spareTimer !== undefined) await new Promise((r) => setTimeout(r, SPARE_RESTART_DELAY_MS));
    const s = this.#spare;
    if (!s) return false;
    const r = await s.ready;
    return r.ok && !s.dead;
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
    clearTimeout(this.#spareTimer);
    const t = this.#opts.disposeTimeoutMs ?? 10_000;
    const results = await Promise.all([this.#active.dispose(t), this.#spare?.dispose(t) ?? Promise.resolve(true)]);
    if (results.some((r) => !r)) throw new Error(`a verifier worker did not exit within ${t} ms`);
  }

  #ask(w: WorkerHandle, job: Job): Promise<Verdict> {
    return new Promise<Verdict>((resolve) => {
      const p = new PendingRequest(w, job.id, resolve, this.#failClosedFn);
      const ring = this.#opts.transport !== 'comlink' ? w.ring : undefined;
      const viaRing = ring ? this.#sendRing(ring, job) : undefined;
      if (viaRing) {
        this.stats.viaRing++;
        viaRing.then(
          (a) => p.fromRing(a),
          (e: unknown) => p.failed(e),
        );
      } else {
        w.api.verify(job.message()).then(
          (raw) => p.fromComlink(raw),
          (e: unknown) => p.failed(e),
        );
      }
    });
  }

  /** Puts the job on the ring, or undefined when the ring does not carry it (comlink then does). */
  #sendRing(ring: NonNullable<WorkerHandle['ring']>, job: Job): Promise<RingAnswer> | undefined {
    if (job.kind === 'text-patch') {
      const records = job.records();
      return records ? ring.sendPatches(job.id, job.vm, records) : undefined;
    }
    if (job.kind === 'module-unload') {
      const m = job.message() as Extract<VerifyRequest, { kind: 'module-unload' }>;
      return typeof m.name === 'string' && typeof m.vm === 'string' ? ring.sendUnload(job.id, m.vm, m.name) : undefined;
    }
    return undefined;
  }

  /** {@link #failClosed} as a function value, made once (requests in flight call it). */
  readonly #failClosedFn = (id: number, why: string): Verdict => this.#failClosed(id, why);

  #failClosed(id: number, why: string): Verdict {
    this.stats.failClosed++;
    return failClosedVerdict(id, why);
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
      // A parked verifier wakes in tens of microseconds or more: wake it now, not with the next request.
      spare.ring?.wake();
    } else {
      this.#active = this.#startWorker();
    }
    if (this.#opts.spare ?? true) this.#scheduleSpare();
  }

  /** Starts the next spare a little later (see SPARE_RESTART_DELAY_MS), once. */
  #scheduleSpare(): void {
    if (this.#disposed || this.#spareTimer !== undefined) return;
    this.#spareTimer = setTimeout(() => {
      this.#spareTimer = undefined;
      if (!this.#spare) this.#startSpare();
    }, SPARE_RESTART_DELAY_MS);
  }

  #startSpare(): void {
    if (this.#disposed) return;
    this.#spare = this.#startWorker();
  }

  /** A worker with this link's ring, if it uses one. */
  static #newWorker(opts: VerifierLinkOptions): WorkerHandle {
    const noProgressMs = opts.timeoutMs ?? DEFAULT_NO_PROGRESS_MS;
    const initTimeoutMs = opts.initTimeoutMs ?? Math.max(20_000, 2 * noProgressMs);
    const bounds: WatchdogBounds = { noProgressMs, ceilingMs: opts.ceilingMs ?? Math.max(DEFAULT_CEILING_MS, noProgressMs) };
    return opts.transport === 'comlink'
      ? new WorkerHandle(opts.init, undefined, undefined, initTimeoutMs, bounds)
      : new WorkerHandle(opts.init, opts.ring ?? {}, opts.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT, initTimeoutMs, bounds);
  }

  /** Starts a worker whose readiness includes replaying the journal. */
  #startWorker(): WorkerHandle {
    const w = VerifierLink.#newWorker({ ...this.#opts, init: withOnlineCpus(this.#opts.init, this.#onlineCpus) });
    for (const [vm, state] of this.#imported) w.importState(vm, state);
    w.replay([...this.#journal]);
    this.#watch(w);
    return w;
  }
}

/** `init` with the CPUs online the VMM announced since it was made (a VM without config gets none). */
function withOnlineCpus(init: WorkerInit, online: ReadonlyMap<string, number>): WorkerInit {
  if (online.size === 0 || !init.vms) return init;
  const vms = Object.fromEntries(Object.entries(init.vms).map(([vm, c]) => [vm, online.has(vm) ? { ...c, onlineCpus: online.get(vm)! } : c]));
  return { ...init, vms };
}
