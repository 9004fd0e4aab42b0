/**
 * Coalesces EPT permission sets into runs for {@link VmObserver.eptUpdate}: consecutive frames
 * set to the same permissions become one event, so the lock at the end of boot (about 262k
 * frames) is a handful of events, not 262k.
 *
 * The EPT calls {@link EptRuns.add} on every set while somebody watches; a run is emitted when
 * the next set does not extend it (another frame or other permissions) and when the core
 * {@link EptRuns.flush}es it: at the end of every hypercall, before every other host event
 * (so events stay in order), on a reset and after a state load.
 */
import type { EptUpdateEvent } from './vm-observer.ts';

/** The pending run of EPT sets. */
export class EptRuns {
  readonly #emit: (e: EptUpdateEvent) => void;
  #first = 0;
  #count = 0;
  #perms = 0;
  #time = 0;

  /** `emit` gets each finished run; it must not throw (wrap the observer in notify()). */
  constructor(emit: (e: EptUpdateEvent) => void) {
    this.#emit = emit;
  }

  /** `count` frames from `first` were set to `perms`. */
  add(first: number, count: number, perms: number): void {
    if (this.#count > 0 && first === this.#first + this.#count && perms === this.#perms) {
      this.#count += count;
      return;
    }
    this.flush();
    this.#first = first;
    this.#count = count;
    this.#perms = perms;
    this.#time = performance.now();
  }

  /** Emits the pending run, if any. */
  flush(): void {
    if (this.#count === 0) return;
    const e: EptUpdateEvent = { first: this.#first, count: this.#count, perms: this.#perms, time: this.#time };
    this.#count = 0;
    this.#emit(e);
  }
}
