/**
 * The core's side of a {@link VmObserver}: what the vCPUs, the VMM's exit table and the EPT
 * call while somebody watches. Each event first flushes the pending EPT run (so events reach
 * the observer in the order things happened) and reaches the observer through
 * {@link notify}, so an observer that throws never changes what the VM does.
 *
 * A VM nobody watches has no HostEvents at all: every hook is one `undefined` check.
 */
import type { VmExit } from '../exits/exit.ts';
import type { Ept } from '../ept/ept.ts';
import { EptRuns } from './ept-runs.ts';
import { notify, type HypercallEvent, type VmObserver } from './vm-observer.ts';

/** Emits the host events of one VM core to its observer. */
export class HostEvents {
  readonly observer: VmObserver;
  readonly #runs: EptRuns | undefined;

  /** Watches `ept` too when the observer wants EPT updates. */
  constructor(observer: VmObserver, ept: Ept) {
    this.observer = observer;
    if (observer.eptUpdate !== undefined) {
      this.#runs = new EptRuns((e) => notify(() => observer.eptUpdate!(e)));
      ept.watch(this.#runs);
    }
  }

  /** Emits the pending EPT run, if any. */
  flushEpt(): void {
    this.#runs?.flush();
  }

  /** A hypercall was answered. */
  hypercall(e: HypercallEvent): void {
    this.flushEpt();
    const o = this.observer;
    if (o.hypercall !== undefined) notify(() => o.hypercall!(e));
  }

  /** The VMM handled `exit` with `action`. */
  exit(exit: VmExit, action: string, note: string | undefined): void {
    this.flushEpt();
    const o = this.observer;
    if (o.exit !== undefined) {
      const time = performance.now();
      notify(() => o.exit!({ vcpu: exit.vcpu, exit, action, ...(note !== undefined ? { note } : {}), time }));
    }
  }

  /** The VMM reset the VM `vm`. */
  reset(vm: string, why: string): void {
    this.flushEpt();
    const o = this.observer;
    if (o.reset !== undefined) {
      const time = performance.now();
      notify(() => o.reset!({ vm, why, time }));
    }
  }
}
