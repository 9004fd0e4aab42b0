/**
 * The VMM's record of what happened to the VM: the exits it handled and what it did about
 * each, and the host-side refusals of its own device and copy paths (a DMA the EPT forbids, a
 * copy of a private page). This is the host's operational log; the hash-chained audit log
 * records verdicts on authenticated changes and, for the same refusals, an audit record.
 *
 * Host-side refusals are events, not VM exits: no guest instruction exits; the VMM itself was
 * stopped from doing something (its emulated disk, its snapshot code).
 */
import type { VmExit } from '../exits/exit.ts';
import type { Decision } from './policy.ts';

/** Fields every event has. */
interface EventBase {
  /** 0, 1, 2, ... in order, across every kind. */
  readonly seq: number;
  /** Milliseconds since the VMM started (performance.now()). */
  readonly time: number;
}

/** One handled exit. */
export interface VmmExitEvent extends EventBase {
  readonly kind: 'exit';
  readonly exit: VmExit;
  /** What was done (after the handler table's contract was applied). */
  readonly action: Decision['action'];
  /** Why, when the policy or the contract said. */
  readonly note?: string;
}

/** An emulated device's DMA that the DMA port refused; nothing was transferred. */
export interface VmmDmaRefusedEvent extends EventBase {
  readonly kind: 'dma-refused';
  /** The device, e.g. `virtio-blk`. */
  readonly device: string;
  /** `to-guest`: the device writes guest memory (a disk read); `from-guest`: it reads it. */
  readonly direction: 'to-guest' | 'from-guest';
  readonly gpa: bigint;
  readonly len: number;
  /** The first frame that refused, or -1 when the range is outside guest memory. */
  readonly frame: number;
  /** Why, as a kind (hypervisor/vmm/devices/dma-port.ts DmaRefusalKind). */
  readonly refusal: string;
  /** The full message. */
  readonly detail: string;
}

/** A VMM copy path that touched a private page in protected-memory mode; nothing was copied. */
export interface VmmHostAccessRefusedEvent extends EventBase {
  readonly kind: 'host-access-refused';
  /** The named copy path (hypervisor/vmm/host-memory.ts HostCopyPath). */
  readonly path: string;
  readonly access: 'read' | 'write';
  readonly gpa: bigint;
  readonly len: number;
  /** The private frame. */
  readonly frame: number;
  readonly detail: string;
}

/** One event of the VMM's log. */
export type VmmEvent = VmmExitEvent | VmmDmaRefusedEvent | VmmHostAccessRefusedEvent;

/** An event's fields before the log numbers it. */
export type HostRefusal = Omit<VmmDmaRefusedEvent, 'seq' | 'time'> | Omit<VmmHostAccessRefusedEvent, 'seq' | 'time'>;

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

  /** Records a handled exit. */
  append(exit: VmExit, action: Decision['action'], note?: string): VmmExitEvent {
    const ev: VmmExitEvent = { kind: 'exit', seq: this.#seq++, time: performance.now(), exit, action, ...(note ? { note } : {}) };
    this.#push(ev);
    return ev;
  }

  /** Records a host-side refusal (a refused DMA, a refused copy of a private page). */
  appendHost(refusal: HostRefusal): VmmDmaRefusedEvent | VmmHostAccessRefusedEvent {
    const ev = { ...refusal, seq: this.#seq++, time: performance.now() } as VmmDmaRefusedEvent | VmmHostAccessRefusedEvent;
    this.#push(ev);
    return ev;
  }

  #push(ev: VmmEvent): void {
    this.#events.push(ev);
    if (this.#events.length > this.#capacity) {
      this.#events.shift();
      this.#dropped++;
    }
  }

  /** The logged events, oldest first. */
  events(): readonly VmmEvent[] {
    return this.#events;
  }

  /** Logged exits only, oldest first. */
  exits(): VmmExitEvent[] {
    return this.#events.filter((e): e is VmmExitEvent => e.kind === 'exit');
  }

  /** Exit events of one exit reason. */
  byReason<R extends VmExit['reason']>(reason: R): Array<VmmExitEvent & { exit: Extract<VmExit, { reason: R }> }> {
    return this.#events.filter((e) => e.kind === 'exit' && e.exit.reason === reason) as Array<VmmExitEvent & { exit: Extract<VmExit, { reason: R }> }>;
  }

  /** Events of one kind. */
  byKind<K extends VmmEvent['kind']>(kind: K): Array<Extract<VmmEvent, { kind: K }>> {
    return this.#events.filter((e) => e.kind === kind) as Array<Extract<VmmEvent, { kind: K }>>;
  }

  /** How many events were dropped because the log was full. */
  get dropped(): number {
    return this.#dropped;
  }
}
