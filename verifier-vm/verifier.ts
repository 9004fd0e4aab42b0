/**
 * The verifier engine: validates each request's shape, runs the plugins that claim its kind,
 * combines their decisions (default deny; see plugin-api.ts), lets plugins commit state, and
 * appends the verdict to the audit log. One engine serves many VMs; each VM has its own state.
 *
 * It runs inside the verifier worker (verifier-vm/worker.ts); tests may run it in-process.
 */
import { PROTOCOL_VERSION, denial, validateRequest, type PatchItem, type RequestBody, type Verdict, type VerifyRequest } from '../shared/protocol.ts';
import type { AnyPlugin, Decision, PluginContext, PluginResult, VmState } from './plugin-api.ts';
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

function itemCount(r: VerifyRequest): number {
  if (r.kind === 'text-patch') return r.items.length;
  if (r.kind === 'set-memory') return r.ranges.length;
  return 0;
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

  /** Decides one message; never throws. The verdict is audited before it is returned. */
  verify(message: unknown): Verdict {
    this.stats.requests++;
    const v = validateRequest(message);
    let verdict: Verdict;
    if (!v.ok) {
      this.stats.malformed++;
      verdict = denial(v.id, `malformed request: ${v.error}`);
    } else {
      verdict = this.#decide(v.request);
    }
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
   * Decides a text-patch batch in record form (the verification ring's volume path,
   * verifier-vm/record-batch.ts): the same rules, decisions and reasons as {@link verify} on
   * the same items, in packed form. Counted and audited like {@link verify}.
   * The records must have passed `PatchRecords.validate()`: the ring's reader checks them.
   */
  verifyPatchRecords(id: number, vm: string, records: PatchRecords): RecordBatchOutcome {
    this.stats.requests++;
    const batch = recordBatch(id, vm, records);
    const state = this.vmState(vm);
    // The same context as #decide gives each plugin (no closure: this is the ring's hot path).
    const base = { manifest: state.kernel?.manifest ?? this.#manifest, keyring: this.#keyring, vm: state, facts: new Map<string, unknown>() };
    const claimants = this.#plugins.filter((p) => (p.kinds as readonly string[]).includes('text-patch'));
    const out = decideRecordBatch(batch, claimants, base, this.#config);
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

  #decide(request: VerifyRequest): Verdict {
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
    const n = itemCount(request);
    const items: Array<{ decision: Decision; reason: string }> = Array.from({ length: n }, () => ({ decision: 'abstain', reason: '' }));
    let overall: { decision: Decision; reason: string } = { decision: 'abstain', reason: '' };
    let grants: PluginResult['grants'];
    const deciders: string[] = [];
    for (const p of claimants) {
      let r: PluginResult;
      try {
        r = p.decide(request as never, ctxFor(p));
      } catch (e) {
        r = { decision: 'deny', reason: `plugin ${p.name} failed: ${e instanceof Error ? e.message : String(e)}` };
      }
      if (r.decision !== 'abstain' || r.items?.some((i) => i.decision !== 'abstain')) deciders.push(p.name);
      overall = combine(overall, r.decision, `${p.name}: ${r.reason}`);
      if (r.grants && r.decision === 'allow') grants = r.grants;
      if (n > 0) {
        for (let i = 0; i < n; i++) {
          const d = r.items?.[i] ?? { decision: r.decision === 'deny' ? 'deny' : 'abstain', reason: r.reason };
          items[i] = combine(items[i]!, d.decision, `${p.name}: ${d.reason}`);
        }
      }
    }
    let ok: boolean;
    let reason: string;
    let outItems: Verdict['items'];
    if (n > 0) {
      outItems = items.map((i) =>
        i.decision === 'allow' ? { ok: true, reason: i.reason } : { ok: false, reason: i.decision === 'deny' ? i.reason : `no plugin allowed this ${request.kind} item (default deny)` },
      );
      const denied = outItems.filter((i) => !i.ok);
      ok = overall.decision !== 'deny' && denied.length === 0;
      reason = overall.decision === 'deny' ? overall.reason : ok ? `all ${n} items allowed` : `${denied.length} of ${n} items denied; first: ${denied[0]!.reason}`;
    } else {
      ok = overall.decision === 'allow';
      reason = overall.decision === 'abstain' ? `no plugin allowed this ${request.kind} request (default deny)` : overall.reason;
    }
    for (const p of claimants) {
      try {
        p.commit?.(request as never, ok, ctxFor(p));
      } catch {
        // TRUST: a failing commit must not turn a verdict around after the fact; the plugin's
        // state update is lost, which makes later requests fail closed, never open.
      }
    }
    return {
      v: PROTOCOL_VERSION,
      id: request.id,
      ok,
      reason,
      ...(outItems ? { items: outItems } : {}),
      ...(ok && grants ? { grants } : {}),
      plugins: deciders,
    };
  }
}

/** Deny beats allow beats abstain; the first reason of the winning kind is kept. */
function combine(acc: { decision: Decision; reason: string }, d: Decision, reason: string): { decision: Decision; reason: string } {
  if (acc.decision === 'deny') return acc;
  if (d === 'deny') return { decision: 'deny', reason };
  if (d === 'allow' && acc.decision === 'abstain') return { decision: 'allow', reason };
  return acc;
}

/** What a request is about, in a few words (audit records, `heki replay`): the module, the patch count, the sections. */
export function requestSubject(r: RequestBody): string {
  switch (r.kind) {
    case 'module-load':
    case 'module-unload':
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
