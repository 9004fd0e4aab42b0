/**
 * The verifier: validates each request's shape, has the plugin engine (plugin-engine.ts)
 * decide it, in either form (an object request, or a text-patch batch in record form), counts
 * it and appends the verdict to the audit log. It keeps each VM's state and decides one
 * request at a time. One verifier serves many VMs.
 *
 * It runs inside the verifier worker (verifier-vm/worker.ts); tests may run it in-process.
 */
import { denial, validateRequest, type PatchItem, type RequestBody, type RequestKind, type Verdict } from '../shared/protocol.ts';
import type { PackedVerdict } from '../shared/ring/verdict-codec.ts';
import type { AnyPlugin, VmState } from './plugin-api.ts';
import type { PluginMode } from './plugin-result.ts';
import { PluginEngine, type EngineOutcome, type SharedContext } from './plugin-engine.ts';
import { protocolVerdict, requestForm } from './request-verdict.ts';
import type { Keyring } from './keyring.ts';
import type { KernelManifest } from './manifest.ts';
import type { AuditSink } from '../shared/audit-sink.ts';
import { PatchRecords } from '../shared/ring/patch-records.ts';
import { recordBatch, recordForm } from './record-batch.ts';
import { EXPORTED_VM_STATE_VERSION, VERIFIER_SECTION, applyExportedVmState, checkVerifierSection, type ExportedVmState } from './vm-state.ts';
import { encodeSection } from '../shared/state-section.ts';
import { checkOnlineCpus, defaultVmConfig, type CheckedVmConfig } from './vm-config.ts';
import type { VerifierStats } from '../shared/worker-api.ts';

/** How the engine is set up. */
export interface VerifierOptions {
  readonly keyring: Keyring;
  readonly plugins: readonly AnyPlugin[];
  readonly manifest?: KernelManifest;
  /** Per-plugin configuration by plugin name. */
  readonly pluginConfig?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Where verdicts are recorded; every verdict is appended before it is returned. */
  readonly audit?: AuditSink;
  /** Each VM's configuration from the VMM, checked (vm-config.ts); others get the default. */
  readonly vms?: ReadonlyMap<string, CheckedVmConfig>;
}

/** The verifier. */
export class Verifier {
  #manifest: KernelManifest | undefined;
  readonly #keyring: Keyring;
  readonly #engine: PluginEngine;
  readonly #audit: AuditSink | undefined;
  readonly #vms = new Map<string, VmState & { onlineCpus: number }>();
  readonly #vmConfig: Map<string, CheckedVmConfig>;
  readonly stats: VerifierStats = { requests: 0, allowed: 0, denied: 0, malformed: 0 };
  /** Asynchronous decisions started and not finished, and the end of the last one (see #ordered). */
  #pending = 0;
  #tail: Promise<void> = Promise.resolve();

  /** Throws when two plugins share a name. */
  constructor(options: VerifierOptions) {
    this.#engine = new PluginEngine(options.plugins, options.pluginConfig);
    this.#keyring = options.keyring;
    this.#manifest = options.manifest;
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
    return this.#engine.plugins.map((p) => ({ name: p.name, kinds: p.kinds, description: p.description }));
  }

  /** State of one VM (created on first use). */
  vmState(vm: string): VmState {
    let s = this.#vms.get(vm);
    if (!s) {
      const c = this.#vmConfigOf(vm);
      s = {
        vm,
        modules: new Map(),
        codeImages: new Map(),
        bootVerified: false,
        kernel: undefined,
        pluginState: new Map(),
        cpuModel: c.cpuModel,
        onlineCpus: c.onlineCpus,
      };
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

  /**
   * Takes a VM's state from the VMM (a fork of a booted VM: the `verifier` section the parent
   * VM's verifier exported), checked as a restore checks it (verifier-vm/vm-state.ts): its shape,
   * and the manifest it names against this verifier's keyring. Undefined when taken, else why
   * not. Refused for a VM this verifier already holds state for: an import never replaces
   * what a VM's own requests built up.
   *
   * TRUST: the VMM's control plane, as `init` and `resetVm` are. The guest cannot reach it,
   * and the state never leaves the host: the VMM carried it from one verifier to another as
   * data (a structured clone over the worker boundary), without reading it.
   */
  importVm(vm: string, section: unknown): string | undefined {
    if (typeof vm !== 'string' || vm === '') return 'the VM name is not a non-empty string';
    if (this.#vms.has(vm)) return `the verifier already holds state for VM ${vm}: reset it before an import`;
    const checked = checkVerifierSection(section, this.#keyring);
    if (!checked.ok) return `the imported state of VM ${vm}: ${checked.error}`;
    applyExportedVmState(this.vmState(vm), checked.state, checked.kernel);
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

  /** {@link exportVm} as the `verifier` section of a state image (vm-state.ts VERIFIER_SECTION): the verifier writes the section it alone reads back. */
  exportVmSection(vm: string): Uint8Array {
    return encodeSection(VERIFIER_SECTION, this.exportVm(vm));
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
    return this.#ordered(
      async,
      () => this.#verify(message, async ? 'async' : 'sync'),
      () => denial(-1, BUSY),
    );
  }

  #verify(message: unknown, mode: PluginMode): Verdict | Promise<Verdict> {
    this.stats.requests++;
    const v = validateRequest(message);
    if (!v.ok) {
      this.stats.malformed++;
      const verdict = denial(v.id, `malformed request: ${v.error}`);
      this.#account(null, 'malformed', null, { id: verdict.id, ok: false, reason: verdict.reason, plugins: [] });
      return verdict;
    }
    const request = v.request;
    const form = requestForm(request);
    const decided = (out: EngineOutcome): Verdict => {
      this.#account(request.vm, request.kind, requestSubject(request), out.verdict);
      return protocolVerdict(form, out);
    };
    const out = this.#engine.decide(form, () => this.#shared(request.vm), mode);
    return out instanceof Promise ? out.then(decided) : decided(out);
  }

  /** What every plugin asked about a request of `vm` shares: the VM's manifest, the keyring, its state, fresh facts. */
  #shared(vm: string): SharedContext {
    const state = this.vmState(vm);
    return { manifest: state.kernel?.manifest ?? this.#manifest, keyring: this.#keyring, vm: state, facts: new Map<string, unknown>() };
  }

  /** Counts a verdict and appends it to the audit log, for either form (malformed requests: `vm` and `subject` null). */
  #account(vm: string | null, kind: RequestKind | 'malformed', subject: string | null, verdict: PackedVerdict): void {
    if (verdict.ok) this.stats.allowed++;
    else this.stats.denied++;
    if (!this.#audit) return;
    let allowed = 0;
    const items = verdict.items;
    if (items) for (let i = 0; i < items.count; i++) allowed += items.ok[i] as number;
    this.#audit.append({
      event: 'verdict',
      id: verdict.id,
      vm,
      kind,
      subject,
      ok: verdict.ok,
      reason: verdict.reason,
      plugins: [...verdict.plugins],
      ...(items ? { itemsAllowed: allowed, itemsDenied: items.count - allowed } : {}),
    });
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
   * verifier-vm/record-batch.ts): the same engine as {@link verify}, so the same decisions and
   * reasons on the same items, in packed form, with the same `async` option. Counted and
   * audited like {@link verify}. The records must have passed `PatchRecords.validate()`: the
   * ring's reader checks them.
   */
  verifyPatchRecords(id: number, vm: string, records: PatchRecords): EngineOutcome;
  verifyPatchRecords(id: number, vm: string, records: PatchRecords, options: { readonly async: true }): EngineOutcome | Promise<EngineOutcome>;
  verifyPatchRecords(id: number, vm: string, records: PatchRecords, options?: { readonly async?: boolean }): EngineOutcome | Promise<EngineOutcome> {
    const async = options?.async === true;
    return this.#ordered(
      async,
      () => this.#verifyPatchRecords(id, vm, records, async ? 'async' : 'sync'),
      () => ({ verdict: { id, ok: false, reason: BUSY, plugins: [] }, grants: undefined }),
    );
  }

  #verifyPatchRecords(id: number, vm: string, records: PatchRecords, mode: PluginMode): EngineOutcome | Promise<EngineOutcome> {
    this.stats.requests++;
    const decided = (out: EngineOutcome): EngineOutcome => {
      this.#account(vm, 'text-patch', `${records.count} patches`, out.verdict);
      return out;
    };
    const out = this.#engine.decide(recordForm(recordBatch(id, vm, records)), () => this.#shared(vm), mode);
    return out instanceof Promise ? out.then(decided) : decided(out);
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
      items.push({
        kind: 'ftrace',
        site,
        oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
        newBytes: call,
        currentBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
      });
    }
    const records = PatchRecords.fromItems(items);
    if (typeof records === 'string') return;
    const vm = '\u0000warm-up';
    for (let i = 0; i < rounds; i++) this.#engine.decide(recordForm(recordBatch(0, vm, records)), () => this.#shared(vm), 'sync');
    this.resetVm(vm);
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
