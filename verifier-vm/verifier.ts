/**
 * The verifier engine: validates each request's shape, runs the plugins that claim its kind,
 * combines their decisions (default deny; see plugin-api.ts), lets plugins commit state, and
 * appends the verdict to the audit log. One engine serves many VMs; each VM has its own state.
 *
 * It runs inside the verifier worker (verifier-vm/worker.ts); tests may run it in-process.
 */
import { denial, validateRequest, type PatchItem, type RequestBody, type Verdict, type VerifyRequest } from '../shared/protocol.ts';
import type { AnyPlugin, PluginContext, VmState } from './plugin-api.ts';
import { runPlugins, type PluginMode } from './plugin-result.ts';
import { combineResults, itemCount } from './request-verdict.ts';
import type { Keyring } from './keyring.ts';
import type { KernelManifest } from './manifest.ts';
import type { AuditLog } from './audit-log.ts';
import { PatchRecords } from '../shared/ring/patch-records.ts';
import { decideRecordBatch, recordBatch, type RecordBatchOutcome } from './record-batch.ts';
import { EXPORTED_VM_STATE_VERSION, type ExportedVmState } from './vm-state.ts';
import { checkOnlineCpus, defaultVmConfig, type CheckedVmConfig } from './vm-config.ts';

/** How the engine is set up. */
export interface VerifierOptions {
  readonly keyring: Keyring;
  readonly plugins: readonly AnyPlugin[];
  readonly manifest?: KernelManifest;
  /** Per-plugin configuration by plugin name. */
  readonly pluginConfig?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Where verdicts are recorded; every verdict is appended before it is returned. */
  readonly audit?: AuditLog;
  /** Each VM's configuration from the VMM, checked (vm-config.ts); others get the default. */
  readonly vms?: ReadonlyMap<string, CheckedVmConfig>;
}

/** Counters, for the control plane's statistics call. */
export interface VerifierStats {
  requests: number;
  allowed: number;
  denied: number;
  malformed: number;
}


/** The engine. */
export class Verifier {
  #manifest: KernelManifest | undefined;
  readonly #keyring: Keyring;
  readonly #plugins: readonly AnyPlugin[];
  readonly #config: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  readonly #audit: AuditLog | undefined;
  readonly #vms = new Map<string, VmState & { onlineCpus: number }>();
  readonly #vmConfig: Map<string, CheckedVmConfig>;
  readonly stats: VerifierStats = { requests: 0, allowed: 0, denied: 0, malformed: 0 };
  /** Asynchronous decisions started and not finished, and the end of the last one (see #ordered). */
  #pending = 0;
  #tail: Promise<void> = Promise.resolve();

  constructor(options: VerifierOptions) {
    const names = new Set<string>();
    for (const p of options.plugins) {
      if (names.has(p.name)) throw new Error(`two plugins are named ${p.name}`);
      names.add(p.name);
    }
    this.#keyring = options.keyring;
    this.#plugins = options.plugins;
    this.#manifest = options.manifest;
    this.#config = options.pluginConfig ?? {};
    this.#audit = options.audit;
    this.#vmConfig = new Map(options.vms ?? []);
  }

  /** Installs the (already signature-checked) manifest. */
  setManifest(manifest: KernelManifest): void {
    this.#manifest = manifest;
  }

  get manifest(): KernelManifest | undefined {
    return this.#manifest;
  }

  /** Plugin names and the kinds they claim. */
  plugins(): Array<{ name: string; kinds: readonly string[]; description: string }> {
    return this.#plugins.map((p) => ({ name: p.name, kinds: p.kinds, description: p.description }));
  }

  /** State of one VM (created on first use). */
  vmState(vm: string): VmState {
    let s = this.#vms.get(vm);
    if (!s) {
      const c = this.#vmConfigOf(vm);
      s = { vm, modules: new Map(), codeImages: new Map(), bootVerified: false, kernel: undefined, pluginState: new Map(), cpuModel: c.cpuModel, onlineCpus: c.onlineCpus };
      this.#vms.set(vm, s);
    }
    return s;
  }

  #vmConfigOf(vm: string): CheckedVmConfig {
    let c = this.#vmConfig.get(vm);
    if (!c) {
      c = defaultVmConfig();
      this.#vmConfig.set(vm, c);
    }
    return c;
  }

  /**
   * The VMM brought CPUs of `vm` online (control plane): the count only rises, within the
   * model's possible CPUs. Undefined when taken, else why not. Survives {@link resetVm}.
   */
  setOnlineCpus(vm: string, online: number): string | undefined {
    const c = this.#vmConfigOf(vm);
    const bad = checkOnlineCpus(c.cpuModel, online);
    if (bad) return bad;
    if (online < c.onlineCpus) return `${online} CPUs online is fewer than the ${c.onlineCpus} already online (CPU unplug is not modelled)`;
    c.onlineCpus = online;
    const s = this.#vms.get(vm);
    if (s) s.onlineCpus = online;
    return undefined;
  }

  /** Forgets a VM's state (the VMM reset it). */
  resetVm(vm: string): void {
    this.#vms.delete(vm);
  }

  /**
   * A VM's state as plain data, for the VMM to put in a signed state image (hibernation,
   * migration); undefined when the verifier has none for it. It comes back only through a
   * `restore-state` request, whose image the lifecycle plugin checks first.
   */
  exportVm(vm: string): ExportedVmState | undefined {
    const s = this.#vms.get(vm);
    if (!s) return undefined;
    return {
      version: EXPORTED_VM_STATE_VERSION,
      bootVerified: s.bootVerified,
      modules: s.modules,
      codeImages: s.codeImages,
      pluginState: s.pluginState,
      manifest: s.kernel?.text,
    };
  }

  /**
   * Decides one message; never throws. The verdict is audited before it is returned. Plain,
   * the call is synchronous, and a plugin that answers with a promise is a denial saying so;
   * with `{ async: true }` (the worker, `heki replay`) such an answer is awaited and the
   * verdict comes as a promise (only then). Either way requests are decided one at a time, in
   * the order they came: a request waits for the asynchronous decision before it.
   */
  verify(message: unknown): Verdict;
  verify(message: unknown, options: { readonly async: true }): Verdict | Promise<Verdict>;
  verify(message: unknown, options?: { readonly async?: boolean }): Verdict | Promise<Verdict> {
    const async = options?.async === true;
    return this.#ordered(async, () => this.#verify(message, async ? 'async' : 'sync'), () => denial(-1, BUSY));
  }

  #verify(message: unknown, mode: PluginMode): Verdict | Promise<Verdict> {
    this.stats.requests++;
    const v = validateRequest(message);
    if (!v.ok) {
      this.stats.malformed++;
      return this.#audited(v, denial(v.id, `malformed request: ${v.error}`));
    }
    const verdict = this.#decide(v.request, mode);
    return verdict instanceof Promise ? verdict.then((x) => this.#audited(v, x)) : this.#audited(v, verdict);
  }

  #audited(v: ReturnType<typeof validateRequest>, verdict: Verdict): Verdict {
    if (verdict.ok) this.stats.allowed++;
    else this.stats.denied++;
    this.#audit?.append({
      event: 'verdict',
      id: verdict.id,
      vm: v.ok ? v.request.vm : null,
      kind: v.ok ? v.request.kind : 'malformed',
      subject: v.ok ? requestSubject(v.request) : null,
      ok: verdict.ok,
      reason: verdict.reason,
      plugins: [...verdict.plugins],
      ...(verdict.items ? { itemsAllowed: verdict.items.filter((i) => i.ok).length, itemsDenied: verdict.items.filter((i) => !i.ok).length } : {}),
    });
    return verdict;
  }

  /**
   * Runs `decide` after every asynchronous decision before it; a synchronous call while one is
   * pending cannot wait and gets `busy()` (a denial).
   * INVARIANT: at most one request is being decided; plugins see the state every earlier
   * request's commits left (the kprobe plugin's commit re-checks on that assumption).
   */
  #ordered<T>(async: boolean, decide: () => T | Promise<T>, busy: () => T): T | Promise<T> {
    if (this.#pending === 0) {
      const r = decide();
      return r instanceof Promise ? this.#track(r) : r;
    }
    if (!async) return busy();
    return this.#track(this.#tail.then(decide));
  }

  #track<T>(p: Promise<T>): Promise<T> {
    this.#pending++;
    const done = p.finally(() => void this.#pending--);
    this.#tail = done.then(
      () => undefined,
      () => undefined,
    );
    return done;
  }

  /**
   * Decides a text-patch batch in record form (the verification ring's volume path,
   * verifier-vm/record-batch.ts): the same rules, decisions and reasons as {@link verify} on
   * the same items, in packed form, with the same `async` option. Counted and audited like
   * {@link verify}. The records must have passed `PatchRecords.validate()`: the ring's reader checks them.
   */
  verifyPatchRecords(id: number, vm: string, records: PatchRecords): RecordBatchOutcome;
  verifyPatchRecords(id: number, vm: string, records: PatchRecords, options: { readonly async: true }): RecordBatchOutcome | Promise<RecordBatchOutcome>;
  verifyPatchRecords(id: number, vm: string, records: PatchRecords, options?: { readonly async?: boolean }): RecordBatchOutcome | Promise<RecordBatchOutcome> {
    const async = options?.async === true;
    return this.#ordered(async, () => this.#verifyPatchRecords(id, vm, records, async ? 'async' : 'sync'), () => ({ verdict: { id, ok: false, reason: BUSY, plugins: [] }, grants: undefined }));
  }

  #verifyPatchRecords(id: number, vm: string, records: PatchRecords, mode: PluginMode): RecordBatchOutcome | Promise<RecordBatchOutcome> {
    this.stats.requests++;
    const batch = recordBatch(id, vm, records);
    const state = this.vmState(vm);
    // The same context as #decide gives each plugin (no closure: this is the ring's hot path).
    const base = { manifest: state.kernel?.manifest ?? this.#manifest, keyring: this.#keyring, vm: state, facts: new Map<string, unknown>() };
    const claimants = this.#plugins.filter((p) => (p.kinds as readonly string[]).includes('text-patch'));
    const out = decideRecordBatch(batch, claimants, base, this.#config, mode);
    return out instanceof Promise ? out.then((o) => this.#auditedRecords(id, vm, records, o)) : this.#auditedRecords(id, vm, records, out);
  }

  #auditedRecords(id: number, vm: string, records: PatchRecords, out: RecordBatchOutcome): RecordBatchOutcome {
    const verdict = out.verdict;
    if (verdict.ok) this.stats.allowed++;
    else this.stats.denied++;
    if (this.#audit) {
      let allowed = 0;
      if (verdict.items) for (let i = 0; i < verdict.items.count; i++) allowed += verdict.items.ok[i] as number;
      this.#audit.append({
        event: 'verdict',
        id,
        vm,
        kind: 'text-patch',
        subject: `${records.count} patches`,
        ok: verdict.ok,
        reason: verdict.reason,
        plugins: [...verdict.plugins],
        ...(verdict.items ? { itemsAllowed: allowed, itemsDenied: verdict.items.count - allowed } : {}),
      });
    }
    return out;
  }

  /**
   * Decides a small ftrace batch of the manifest's own sites for a scratch VM, `rounds` times,
   * uncounted and unaudited, then forgets the scratch VM: the manifest's site index gets built
   * and the record path optimised before a real batch needs them. A spare verifier does this
   * at start, so the first batch it serves after a failover is not also its slowest.
   */
  warmUp(rounds = 200): void {
    const m = this.#manifest;
    const trampoline = m ? [...m.ftraceTrampolines.keys()][0] : undefined;
    if (!m || trampoline === undefined) return;
    const items: PatchItem[] = [];
    for (const site of m.mcountSites) {
      if (items.length === 64) break;
      const call = new Uint8Array(5);
      call[0] = 0xe8;
      new DataView(call.buffer).setInt32(1, Number(BigInt.asIntN(32, trampoline - site - 5n)), true);
      items.push({ kind: 'ftrace', site, oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0), newBytes: call, currentBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0) });
    }
    const records = PatchRecords.fromItems(items);
    if (typeof records === 'string') return;
    const vm = '\u0000warm-up';
    const state = this.vmState(vm);
    const base = { manifest: this.#manifest, keyring: this.#keyring, vm: state, facts: new Map<string, unknown>() };
    const claimants = this.#plugins.filter((p) => (p.kinds as readonly string[]).includes('text-patch'));
    for (let i = 0; i < rounds; i++) decideRecordBatch(recordBatch(0, vm, records), claimants, { ...base, facts: new Map() }, this.#config);
    this.resetVm(vm);
  }

  #decide(request: VerifyRequest, mode: PluginMode): Verdict | Promise<Verdict> {
    const claimants = this.#plugins.filter((p) => (p.kinds as readonly string[]).includes(request.kind));
    if (claimants.length === 0) return denial(request.id, `no plugin claims ${request.kind} requests (default deny)`);
    const facts = new Map<string, unknown>();
    const vm = this.vmState(request.vm);
    const ctxFor = (p: AnyPlugin): PluginContext => ({
      manifest: vm.kernel?.manifest ?? this.#manifest,
      keyring: this.#keyring,
      vm,
      facts,
      config: this.#config[p.name] ?? {},
    });
    const results = runPlugins(claimants, (p) => p.decide(request as never, ctxFor(p)), itemCount(request), mode);
    return results instanceof Promise ? results.then((rs) => combineResults(request, claimants, rs, ctxFor)) : combineResults(request, claimants, results, ctxFor);
  }
}

/** What a synchronous call gets while an asynchronous decision is pending. */
const BUSY = 'the verifier is deciding an asynchronous request; a synchronous verify cannot wait for it';

/** What a request is about, in a few words (audit records, `heki replay`): the module, the patch count, the sections. */
export function requestSubject(r: RequestBody): string {
  switch (r.kind) {
    case 'module-load':
    case 'module-unload':
    case 'module-init-free':
      return r.name;
    case 'code-load':
      return `${r.what}:${r.name}`;
    case 'text-patch':
      return `${r.items.length} patches`;
    case 'set-memory':
      return `${r.ranges.length} ranges`;
    case 'kernel-text':
      return r.sections.map((s) => s.name).join(',');
    case 'kexec-image':
      return `${r.slot} image (${r.image.length} bytes)`;
    case 'kernel-manifest':
      return 'kernel manifest';
    case 'restore-state':
      return `state image (${r.image.length} bytes)`;
  }
}
