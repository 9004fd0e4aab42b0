/**
 * The control-plane interface of the verifier worker, as the core sees it through comlink,
 * and where the worker starts. Data plane calls (`verify`) carry protocol messages
 * (shared/protocol.ts); control calls configure the worker at VM start and read statistics.
 */
import { fileURLToPath } from 'node:url';
import type { PatchKindName } from './heki-descriptors.ts';
import type { KeyringData } from './keyring-data.ts';
import type { RingLayout } from './ring/layout.ts';
import type { CpuModel } from './x86/cpu-model.ts';

/**
 * The file a verifier worker is started from: the entry module, which registers tsx (a
 * worker does not inherit the parent's loader) and loads verifier-vm/worker.ts.
 * TRUST: the host starts the verifier VM from this file, as a VMM boots a VM from its image,
 * and reaches it only through {@link VerifierWorkerApi}; it imports none of the worker's code.
 */
export const VERIFIER_WORKER_ENTRY = fileURLToPath(new URL('../verifier-vm/worker-entry.mjs', import.meta.url));

/**
 * What the VMM says about one VM when it starts the verifier: its configuration, which the
 * guest never gives. Checked in the worker (verifier-vm/vm-config.ts) before it is used.
 */
export interface VmConfig {
  /** The CPU model the VMM runs the VM on (plugins read it as `ctx.vm.cpuModel`). */
  readonly cpuModel: CpuModel;
  /** CPUs online now (default: the model's present CPUs); raised by `setOnlineCpus`. */
  readonly onlineCpus?: number;
}

/** How the VMM configures a verifier worker. Plain data: it crosses the worker boundary. */
export interface WorkerInit {
  /** The keyring, built by the VMM from host files. */
  readonly keyring: KeyringData;
  /** The signed manifest file's text; checked in the worker against kernel-vendor keys. */
  readonly manifest?: string;
  /** Built-in plugins to enable, by name (default: all). */
  readonly plugins?: readonly string[];
  /** Absolute paths of extra plugin modules (default export: a plugin or an array of them). */
  readonly pluginModules?: readonly string[];
  /** Per-plugin configuration. */
  readonly pluginConfig?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Allows `inject` (fault injection for tests and the benchmark). Off by default. */
  readonly faultInjection?: boolean;
  /**
   * Each VM's configuration from the VMM, by VM name. A VM without one is verified for the
   * default CPU model (shared/x86/cpu-models-builtin.ts), as a VMM that names none boots it.
   */
  readonly vms?: Readonly<Record<string, VmConfig>>;
}

/** What `init` answers. */
export type InitResult =
  | {
      ok: true;
      plugins: Array<{ name: string; kinds: readonly string[] }>;
      manifest?: { kernel: string; keyId: string };
      /**
       * Which allowed text-patch requests change the verifier's per-VM state, so the link
       * journals them for a spare: those holding an item of one of these kinds (the built-in
       * plugins: kprobe, jump-label and static-call items; ftrace and smp-lock items change
       * nothing), or all (a text-patch plugin module keeps state). Absent: all.
       */
      statefulTextPatch?: 'always' | readonly PatchKindName[];
    }
  | { ok: false; error: string };

/** The verifier's counters, for the control plane's statistics call. */
export interface VerifierStats {
  requests: number;
  allowed: number;
  denied: number;
  malformed: number;
}

/** How the worker's ring loop waits (verifier-vm/ring-server.ts), as the core asks in `attachRing`. */
export interface RingServerTiming {
  /**
   * How long the loop spins after the last request before it parks (ms): the shortest
   * window. The loop widens it (up to the ring server's `MAX_SPIN_MS`) while requests keep
   * arriving soon after it parked, so a steady stream never pays for a wake-up per request.
   */
  readonly spinMs: number;
  /** Longest stretch the loop spins or serves before it yields to the event loop (ms). */
  readonly sliceMs: number;
  /**
   * How the loop parks: `block` (default) in `Atomics.wait`, cut every
   * `PARK_SLICE_MS`; `async` in `Atomics.waitAsync` (the thread's event loop runs
   * meanwhile: for a loop that shares its thread with the core, as in tests).
   */
  readonly park?: 'block' | 'async';
}

/** Faults a test can inject into the worker (when `faultInjection` is on). */
export type InjectedFault = 'crash' | 'hang' | 'garbage' | 'wrong-id';

/** The worker's API. */
export interface VerifierWorkerApi {
  init(config: WorkerInit): Promise<InitResult>;
  /** Decides one request (a shape-unchecked message: the worker validates it). */
  verify(message: unknown): unknown;
  stats(): VerifierStats;
  resetVm(vm: string): void;
  /**
   * The VMM raised (CPU hotplug) the number of CPUs of `vm` online: undefined once taken,
   * else why not (a count that is not an integer from the present to the possible CPUs, or
   * lower than before). Kept across `resetVm`: it is VM configuration, not verified state.
   */
  setOnlineCpus(vm: string, online: number): string | undefined;
  /** The per-VM state of `vm` as plain data (verifier-vm/vm-state.ts), or undefined. */
  exportVm(vm: string): unknown;
  /** The same state as the `verifier` section of a state image (verifier-vm/vm-state.ts), or undefined before init. */
  exportVmSection(vm: string): Uint8Array | undefined;
  /**
   * Takes the per-VM state of `vm` as {@link exportVmSection} gave it, the `verifier` section
   * bytes (the VMM forks a booted VM onto a new verifier): undefined once taken, else why not
   * (a malformed section, a manifest the keyring does not trust, a VM that already has state).
   */
  importVm(vm: string, section: Uint8Array): string | undefined;
  /**
   * Starts serving the verification ring in `layout` (shared/ring/layout.ts) beside comlink;
   * undefined when it runs, else why not (the link then keeps to comlink for this worker).
   */
  attachRing(layout: RingLayout, timing?: RingServerTiming): string | undefined;
  /** A verdict the ring could not carry (it said "parked"), handed over once. */
  collect(id: number): unknown;
  /** Arms a fault for the next request (`verify` or the ring). Refused unless faultInjection was set. */
  inject(fault: InjectedFault): boolean;
}
