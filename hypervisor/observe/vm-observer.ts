/**
 * What the host side lets a tool watch: the hypercalls each vCPU makes, the VM exits the VMM
 * handles, the EPT changes the core applies and the requests the core sends to the verifier
 * with their verdicts. The trace writer (`heki run --trace`), the report (`--report`) and the
 * request recorder (`--record`) are observers; machine/machine.ts installs one
 * ({@link fanOut} when there are several).
 *
 * Contract: an observer only watches. Its methods are called synchronously, in order, on
 * the thread that did the work; they must not throw (the caller catches and drops an
 * exception, it never changes what the VM does) and must not keep the objects they are given
 * mutable (requests and verdicts are the core's own, read-only). Every method is optional,
 * and a hook costs one `undefined` check when nobody watches. Times are milliseconds from
 * `performance.now()` on the host.
 */
import type { Verdict } from '../../shared/protocol.ts';
import type { VmExit } from '../exits/exit.ts';
import type { OutgoingRequest } from '../verifier-link/verifier-link.ts';
import type { WorkerInit } from '../../shared/worker-api.ts';

/** A hypercall from the guest, after the core answered it. */
export interface HypercallEvent {
  readonly vcpu: number;
  readonly nr: number;
  /** The arguments as the guest passed them (u64). */
  readonly args: readonly bigint[];
  /** The return value (>= 0 success, a negated KVM status otherwise). */
  readonly ret: number;
  readonly start: number;
  readonly end: number;
}

/** A VM exit the VMM handled, and what it did. */
export interface ExitEvent {
  readonly vcpu: number;
  readonly exit: VmExit;
  /** The VMM's action (hypervisor/vmm/policy.ts Decision['action']). */
  readonly action: string;
  readonly note?: string;
  readonly time: number;
}

/** A run of guest frames whose EPT permissions the core set, all to `perms`. */
export interface EptUpdateEvent {
  readonly first: number;
  readonly count: number;
  /** EPT bits (hypervisor/ept/permissions.ts), including IMMUTABLE. */
  readonly perms: number;
  readonly time: number;
}

/** A request the core sent to the verifier. */
export interface VerifierRequestEvent {
  /** Numbers this request and its verdict (0, 1, 2, ... per observer installation). */
  readonly seq: number;
  readonly vm: string;
  readonly kind: OutgoingRequest['kind'];
  /** Items in a batch (text-patch items, set-memory ranges), else 1. */
  readonly items: number;
  /**
   * The request as the protocol has it. For a text-patch batch sent in record form this
   * builds the items on first call (so observers that only count pay nothing); call it before
   * the request's verdict event (the records are the core's until then).
   */
  request(): OutgoingRequest;
  readonly time: number;
}

/** The verdict on request `seq`. A verifier that failed answers with a denial, as the core sees it. */
export interface VerdictEvent {
  readonly seq: number;
  readonly vm: string;
  readonly kind: OutgoingRequest['kind'];
  readonly verdict: Verdict;
  /** When the request was sent. */
  readonly start: number;
  readonly end: number;
}

/** The VMM reset the VM (reboot, kexec, resume, restore): the verifier forgot it. */
export interface ResetEvent {
  readonly vm: string;
  readonly why: string;
  readonly time: number;
}

/**
 * The VMM started a verifier for `vm` with this configuration (the keyring's public keys, the
 * signed manifest, plugin configuration): at machine start, and again when a migration or a
 * restore starts a new one. The recorder writes it first, so a replay can rebuild the verifier.
 */
export interface VerifierStartedEvent {
  readonly vm: string;
  readonly init: WorkerInit;
  readonly time: number;
}

/** The VMM brought a CPU of `vm` online (CPU hotplug) and told the verifier: `online` CPUs now. */
export interface CpusOnlineEvent {
  readonly vm: string;
  readonly online: number;
  readonly time: number;
}

/** A watcher of the host side. Every method optional. */
export interface VmObserver {
  hypercall?(e: HypercallEvent): void;
  exit?(e: ExitEvent): void;
  eptUpdate?(e: EptUpdateEvent): void;
  verifierRequest?(e: VerifierRequestEvent): void;
  verdict?(e: VerdictEvent): void;
  reset?(e: ResetEvent): void;
  verifierStarted?(e: VerifierStartedEvent): void;
  cpusOnline?(e: CpusOnlineEvent): void;
}

/** One observer that forwards every event to each of `observers`, in order. */
export function fanOut(observers: readonly VmObserver[]): VmObserver {
  if (observers.length === 1) return observers[0]!;
  const on = <K extends keyof VmObserver>(k: K): VmObserver[K] | undefined => {
    const hs = observers.filter((o) => o[k] !== undefined);
    if (hs.length === 0) return undefined;
    return ((e: never) => {
      for (const o of hs) notify(() => (o[k] as (e: never) => void).call(o, e));
    }) as VmObserver[K];
  };
  const out: { -readonly [K in keyof VmObserver]: VmObserver[K] } = {};
  for (const k of ['hypercall', 'exit', 'eptUpdate', 'verifierRequest', 'verdict', 'reset', 'verifierStarted', 'cpusOnline'] as const) {
    const h = on(k);
    if (h) (out as Record<string, unknown>)[k] = h;
  }
  return out;
}

/** Calls an observer, dropping what it throws (an observer never changes what the VM does). */
export function notify(call: () => void): void {
  try {
    call();
  } catch {
    // contract: observers must not throw; a buggy one is ignored
  }
}
