/**
 * The VMM's record of the exits it handled and what it did about each. This is the host's
 * operational log (what happened to the VM); the verifier's hash-chained audit log records
 * verdicts on authenticated changes.
 */
import type { VmExit } from '../exits/exit.ts';
import type { Decision } from './policy.ts';

/** One handled exit. */
export interface VmmEvent {
  /** 0, 1, 2, ... in handling order. */
  readonly seq: number;
  /** Milliseconds since the VMM started (performance.now()). */
  readonly time: number;
  readonly exit: VmExit;
  /** What was done (after the handler table's contract was applied). */
  readonly action: Decision['action'];
  /** Why, when the policy or the contract said. */
  readonly note?: string;
}

/** An append-only, bounded event log (the oldest entries go first past `capacity`). */
export class VmmEventLog {
  readonly #events: VmmEvent[] = [];
  readonly #capacity: number;
  #seq = 0;
  #dropped = 0;
  /** Exits handled without being logged (the policy said `log: false`). */
  unlogged = 0;

  constructor(capacity = 100_000) {
    this.#capacity = capacity;
  }

  append(exit: VmExit, action: Decision['action'], note?: string): VmmEvent {
    const ev: VmmEvent = { seq: this.#seq++, time: performance.now(), exit, action, ...(note ? { note } : {}) };
    this.#events.push(ev);
    if (this.#events.length > this.#capacity) {
      this.#events.shift();
      this.#dropped++;
    }
    return ev;
  }

  /** The logged events, oldest first. */
  events(): readonly VmmEvent[] {
    return this.#events;
  }

  /** Events of one exit reason. */
  byReason<R extends VmExit['reason']>(reason: R): Array<VmmEvent & { exit: Extract<VmExit, { reason: R }> }> {
    return this.#events.filter((e) => e.exit.reason === reason) as Array<VmmEvent & { exit: Extract<VmExit, { reason: R }> }>;
  }

  /** How many events were dropped because the log was full. */
  get dropped(): number {
    return this.#dropped;
  }
}
