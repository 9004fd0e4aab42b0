/**
 * Heki v2's permission counters (include/linux/heki.h, `struct heki_counters`): for every
 * physical page, how many kernel mappings give it read, write and execute. The page's EPT
 * permission is the union over its mappings: a page mapped writable at one address and
 * executable at another needs both, and W^X then refuses it; unmapping one alias takes its
 * contribution away.
 */
import { MEM_ATTR } from '../../shared/abi.ts';

/** A mapping's protection. */
export interface Prot {
  readonly read: boolean;
  readonly write: boolean;
  readonly exec: boolean;
}

/** Mapping counts of one frame. */
export interface Counts {
  read: number;
  write: number;
  exec: number;
}

/**
 * The mappings boot created for a frame (the direct map, the kernel image mapping), as
 * heki_init_perm walks the page tables at boot to initialise the counters. Frames are
 * materialised from it on first use, so a 64 GiB guest does not need 16 M entries up front.
 */
export type CountsBaseline = (frame: number) => Readonly<Counts>;

const NONE: Readonly<Counts> = { read: 0, write: 0, exec: 0 };

/** Counters for every physical frame the kernel maps. */
export class PermissionCounters {
  readonly #frames = new Map<number, Counts>();

  constructor(private readonly baseline: CountsBaseline = () => NONE) {}

  #get(frame: number): Counts | undefined {
    let c = this.#frames.get(frame);
    if (!c) {
      const b = this.baseline(frame);
      if (b.read + b.write + b.exec === 0) return undefined;
      c = { ...b };
      this.#frames.set(frame, c);
    }
    return c;
  }

  /** A mapping of `frame` with `prot` was created. */
  map(frame: number, prot: Prot): void {
    const c = this.#get(frame) ?? { read: 0, write: 0, exec: 0 };
    c.read += prot.read ? 1 : 0;
    c.write += prot.write ? 1 : 0;
    c.exec += prot.exec ? 1 : 0;
    this.#frames.set(frame, c);
  }

  /** A mapping of `frame` with `prot` went away. Throws on an unbalanced unmap (a kernel bug). */
  unmap(frame: number, prot: Prot): void {
    const c = this.#get(frame);
    if (!c || (prot.read && c.read === 0) || (prot.write && c.write === 0) || (prot.exec && c.exec === 0)) {
      throw new Error(`heki counters: unbalanced unmap of frame ${frame}`);
    }
    c.read -= prot.read ? 1 : 0;
    c.write -= prot.write ? 1 : 0;
    c.exec -= prot.exec ? 1 : 0;
    if (c.read + c.write + c.exec === 0) this.#frames.set(frame, c);
  }

  /** A mapping of `frame` changed protection. */
  update(frame: number, from: Prot, to: Prot): void {
    this.unmap(frame, from);
    this.map(frame, to);
  }

  /** The union permission of `frame` as MEM_ATTR bits (0 when nothing maps it). */
  union(frame: number): number {
    const c = this.#get(frame);
    if (!c) return 0;
    return (c.read > 0 ? MEM_ATTR.READ : 0) | (c.write > 0 ? MEM_ATTR.WRITE : 0) | (c.exec > 0 ? MEM_ATTR.EXEC : 0);
  }

  /** The frames whose counts differ from the baseline, as plain data. */
  exportState(): Array<[number, Counts]> {
    return [...this.#frames].map(([f, c]) => [f, { ...c }]);
  }

  /** Replaces the recorded counts (a restored kernel's; the baseline must be the same). */
  importState(entries: ReadonlyArray<readonly [number, Readonly<Counts>]>): void {
    this.#frames.clear();
    for (const [f, c] of entries) this.#frames.set(f, { read: c.read, write: c.write, exec: c.exec });
  }

  /** How many mappings of each kind `frame` has. */
  counts(frame: number): Readonly<Counts> {
    return { ...(this.#get(frame) ?? NONE) };
  }
}
