/**
 * The verifier plugin API (documented for plugin authors in docs/plugins.md).
 *
 * A plugin claims request kinds and decides requests of those kinds. For each request the
 * verifier runs every plugin that claims its kind, in registration order, and combines:
 *
 * - any `deny` denies (the first deny's reason is the verdict's reason);
 * - otherwise at least one `allow` allows;
 * - otherwise (every plugin abstained, or none claims the kind) the request is denied:
 *   the verifier is default-deny.
 *
 * Batches (text-patch items, set-memory ranges) are decided per item with the same rule;
 * the verdict is `ok` only when every item is allowed. The core applies a batch whole or not
 * at all, so `commit` records state only when `ok` is true; the per-item verdicts tell the
 * guest which items were refused.
 *
 * A plugin may publish facts for the plugins after it (`ctx.facts`): the signature plugins
 * publish `module.signature`, and module-end-state refuses a module without that fact, so the
 * end-state check never vouches for an unauthenticated image.
 *
 * Plugins run inside the verifier VM. They receive plain data (byte copies), must not
 * throw for bad input (a throw is caught and becomes a deny naming the plugin), and must be
 * deterministic: the same request and state give the same decision (replay depends on it).
 *
 * INVARIANT: this is the package export `heki-sim/plugin-api`, and it depends on nothing of
 * the engine (verifier.ts, plugin-engine.ts, record-batch.ts): only on the protocol, the
 * manifest and keyring types plugins read, and plugin-decisions.ts, which the engine imports.
 */
import type { CpuModel } from '../shared/x86/cpu-model.ts';
import type { RequestKind, RequestOf, SectionGrant, VerifyRequest } from '../shared/protocol.ts';
import type { Keyring } from './keyring.ts';
import type { KernelManifest } from './manifest.ts';
import type { Decision, RecordBatch, RecordsResult } from './plugin-decisions.ts';

export { ItemDecisions, type Decision, type RecordBatch, type RecordsResult } from './plugin-decisions.ts';

/** What a plugin returns for one request. */
export interface PluginResult {
  /** The decision on the whole request (for batches: on anything not covered by `items`). */
  readonly decision: Decision;
  /** Why. Required for deny; shown in the verdict and the audit log. */
  readonly reason: string;
  /** For batch requests: one decision per item, in request order. */
  readonly items?: ReadonlyArray<{ readonly decision: Decision; readonly reason: string }>;
  /** For module-load: the permissions to grant per section (the last allowing plugin's count). */
  readonly grants?: readonly SectionGrant[];
}

/** A module the verifier verified and the guest has not unloaded. */
export interface VerifiedModule {
  readonly name: string;
  /** Symbols the module exports (its `__ksymtab` entries), at their verified addresses. */
  readonly exports: ReadonlyMap<string, bigint>;
  /** Its ftrace sites (`__mcount_loc`), at verified addresses. */
  readonly mcountSites: ReadonlySet<bigint>;
  /** Its jump-table entries by site. */
  readonly jumpEntries: ReadonlyMap<bigint, { target: bigint; len: 2 | 5 }>;
  /** Its executable ranges [start, end). */
  readonly textRanges: ReadonlyArray<{ start: bigint; end: bigint }>;
  /** Page-aligned ranges of all its sections, with granted MEM_ATTR bits. */
  readonly ranges: ReadonlyArray<{ start: bigint; end: bigint; permissions: number }>;
  /** SHA-256 (hex) of each page of its text as verified, by page address. */
  readonly textPageHashes: ReadonlyMap<bigint, string>;
  /**
   * Entry points of its functions (STT_FUNC symbols of its core text, at verified
   * addresses): where a static call may point into the module. Optional: records made
   * without it allow no static call into the module.
   */
  readonly functions?: ReadonlySet<bigint>;
  /**
   * Its `.smp_locks` lock prefixes within its `.text`: where a lock-prefix restore may write.
   * Optional: records made without it allow none in the module.
   */
  readonly smpLocks?: ReadonlySet<bigint>;
  /**
   * Its init layout while it is live, from the load until the module's init returned
   * (`module-init-free`): the init sections' indexes and page ranges, and the ro_after_init
   * sections sealed then. Absent once init memory is freed, and in records made without it.
   */
  readonly init?: ModuleInitLayout;
}

/** A verified module's init layout and what its end seals (see {@link VerifiedModule.init}). */
export interface ModuleInitLayout {
  /** Section indexes of its init sections (`module_init_layout_section()`). */
  readonly sections: readonly number[];
  /** Page-aligned ranges [start, end) of its init layout. */
  readonly ranges: ReadonlyArray<{ readonly start: bigint; readonly end: bigint }>;
  /** Section indexes of its non-empty core ro_after_init sections (`.data..ro_after_init`, `__jump_table`). */
  readonly roAfterInit: readonly number[];
  /** Page-aligned ranges [start, end) of its core ro_after_init group. */
  readonly roAfterInitRanges: ReadonlyArray<{ readonly start: bigint; readonly end: bigint }>;
}

/** Per-VM state the verifier keeps. Plugins read it; only `commit` hooks change it. */
export interface VmState {
  readonly vm: string;
  /** Verified, loaded modules by name. */
  readonly modules: Map<string, VerifiedModule>;
  /** Code images (eBPF JIT, trampolines) verified for this VM, by start address. */
  readonly codeImages: Map<bigint, { end: bigint; name: string; sha256: string; pageHashes: ReadonlyMap<bigint, string> }>;
  /** Whether the end-of-boot kernel-text check passed. */
  bootVerified: boolean;
  /**
   * The kernel this VM runs when it is not the one of the verifier's own manifest: set when
   * the VMM reset the VM into a kexec or crash kernel (a `kernel-manifest` request), with the
   * signed manifest's text. Plugins see its manifest as `ctx.manifest`.
   */
  kernel?: { readonly manifest: KernelManifest; readonly text: string } | undefined;
  /** Private state of each plugin, by plugin name (e.g. installed kprobes). Change it only in `commit`. */
  readonly pluginState: Map<string, unknown>;
  /**
   * The CPU model the VMM runs this VM on (WorkerInit `vms`; TRUST: from the VMM, never from
   * the guest), checked and frozen: what the boot touch-ups are predicted from.
   */
  readonly cpuModel: CpuModel;
  /** CPUs online now, as the VMM last said (its present CPUs until a CPU hotplug). */
  readonly onlineCpus: number;
}

/** What a plugin sees besides the request. */
export interface PluginContext {
  /** The signed manifest of the kernel this VM runs (its own after a kexec), once the VMM loaded one. */
  readonly manifest: KernelManifest | undefined;
  readonly keyring: Keyring;
  /** State of the VM that sent the request. */
  readonly vm: VmState;
  /** Facts published by earlier plugins for this request. */
  readonly facts: Map<string, unknown>;
  /** This plugin's configuration (from the VMM), or an empty object. */
  readonly config: Readonly<Record<string, unknown>>;
}

/** What `decide` may return: a result, or a promise of one (awaited by the worker and `heki replay`). */
export type PluginAnswer = PluginResult | Promise<PluginResult>;

/**
 * A verifier plugin. `R` is what its `decide` returns: a {@link PluginResult} (default), or a
 * promise of one for an asynchronous plugin (`VerifierPlugin<'module-load', Promise<PluginResult>>`).
 */
export interface VerifierPlugin<K extends RequestKind = RequestKind, R extends PluginAnswer = PluginResult> {
  /** Unique name, e.g. `ftrace`. */
  readonly name: string;
  /** One line on what it checks. */
  readonly description: string;
  /** The request kinds it decides. */
  readonly kinds: readonly K[];
  /**
   * Decides one request. Must not throw for bad input; must be deterministic. The engine
   * checks what it returns: anything but a well-formed result (or a promise of one) is a
   * denial naming the plugin (verifier-vm/plugin-result.ts).
   */
  decide(request: RequestOf<K>, ctx: PluginContext): R;
  /**
   * Optional, for `text-patch` plugins: decides a batch that came in record form (the
   * verification ring) without an object per item, answering with an {@link ItemDecisions}.
   * It must give the same decisions and reasons as `decide` on the same items; return
   * undefined to have `decide` called with protocol items (`batch.request`) instead.
   */
  decideRecords?(batch: RecordBatch, ctx: PluginContext): RecordsResult | undefined;
  /**
   * Optional, with `decideRecords`: `commit` for a batch in record form. Without it `commit`
   * is called with `batch.request`, which makes protocol items of every record.
   */
  commitRecords?(batch: RecordBatch, ok: boolean, ctx: PluginContext): void;
  /**
   * Optional: called once the combined verdict is known, to update per-VM state (e.g. record
   * a verified module). Called for allowed and denied verdicts alike; check `ok`.
   */
  commit?(request: RequestOf<K>, ok: boolean, ctx: PluginContext): void;
}

/** Any plugin, for registries. */
export type AnyPlugin = VerifierPlugin<RequestKind, PluginAnswer>;

/** Helper for plugin authors: the plugin's own typed view of a request. */
export function isKind<K extends RequestKind>(r: VerifyRequest, kind: K): r is RequestOf<K> {
  return r.kind === kind;
}
