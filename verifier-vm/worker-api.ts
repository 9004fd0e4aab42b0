/**
 * The control-plane interface of the verifier worker, as the core sees it through comlink.
 * Data plane calls (`verify`) carry protocol messages (shared/protocol.ts); control calls
 * configure the worker at VM start and read statistics.
 */
import type { KeyringData } from './keyring.ts';
import type { VerifierStats } from './verifier.ts';
import type { RingLayout } from '../shared/ring/layout.ts';
import type { RingServerTiming } from './ring-server.ts';

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
}

/** What `init` answers. */
export type InitResult =
  | {
      ok: true;
      plugins: Array<{ name: string; kinds: readonly string[] }>;
      manifest?: { kernel: string; keyId: string };
      /**
       * Which allowed text-patch requests change the verifier's per-VM state, so the link
       * journals them for a spare: those with kprobe items (the built-in plugins), or all
       * (a text-patch plugin module keeps state). Absent: all.
       */
      statefulTextPatch?: 'kprobe-items' | 'always';
    }
  | { ok: false; error: string };

/** Faults a test can inject into the worker (when `faultInjection` is on). */
export type InjectedFault = 'crash' | 'hang' | 'garbage' | 'wrong-id';

/** The worker's API. */
export interface VerifierWorkerApi {
  init(config: WorkerInit): Promise<InitResult>;
  /** Decides one request (a shape-unchecked message: the worker validates it). */
  verify(message: unknown): unknown;
  stats(): VerifierStats;
  resetVm(vm: string): void;
  /** The per-VM state of `vm` as plain data (verifier-vm/vm-state.ts), or undefined. */
  exportVm(vm: string): unknown;
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
