/**
 * The EPT: per-frame permissions of guest-physical memory, consulted on every guest access.
 *
 * Storage is two-level and sparse, like the hardware's own radix tree: an array indexed by
 * 2 MiB region (frame / 512) of 512-byte leaves of permission bytes. A region nobody locked
 * has no leaf and reads as {@link EPT_DEFAULT}. A check is one array index and one byte read
 * (an earlier Map from region to leaf cost a hash lookup per check: 70 M checks/s instead of
 * the 150+ M/s the benchmark measures now, bench/ept.ts).
 *
 * Consumers get {@link EptView} (look, never change); only the core holds {@link Ept}
 * itself with its setters (vm-memory's rule: consumer traits never create or delete).
 */
import { EPT_DEFAULT, EPT_FROZEN, EPT_IMMUTABLE, accessMask, type AccessMask } from './permissions.ts';
import type { AccessKind, AccessMode } from '../../shared/guest-cpu.ts';
import type { EptRuns } from '../observe/ept-runs.ts';
import type { Gfn } from '../../shared/addr.ts';

const LEAF_SHIFT = 9;
const LEAF_SIZE = 1 << LEAF_SHIFT;
const LEAF_MASK = LEAF_SIZE - 1;

/** The region (leaf index) of `frame`; `>>` alone would wrap above 2^31 frames (8 TiB). */
function leafIndex(frame: number): number {
  return frame < 0x8000_0000 ? frame >> LEAF_SHIFT : Math.floor(frame / LEAF_SIZE);
}

/** Read-only view of the EPT. */
export interface EptView {
  /** Number of frames the EPT covers. */
  readonly frames: number;
  /** Permission bits of `frame` (EPT_* bits). Frames outside guest memory have none. */
  get(frame: Gfn): number;
  /** True when `frame` allows the access. */
  allows(frame: Gfn, access: AccessKind, mode: AccessMode): boolean;
  /**
   * True when `frame` allows the access given as its mask (permissions.ts `accessMask`, made
   * once per access): the hot path of guest accesses, one byte read, a mask and a compare.
   */
  check(frame: Gfn, access: AccessMask): boolean;
  /** Every frame whose permissions differ from the default, ascending, with its bits. */
  entries(): Array<[frame: Gfn, perms: number]>;
  /** Increases on every change; lets caches (the vCPU's TLB) notice EPT updates. */
  readonly generation: number;
}

/** The EPT with its setters; held by the core only. */
export class Ept implements EptView {
  readonly frames: number;
  #generation = 0;
  // INVARIANT: every leaf has LEAF_SIZE entries; indices are leafIndex(frame) < ceil(frames / LEAF_SIZE).
  // A holey array: a region without a leaf is a hole (an array of 2^31 regions stays sparse).
  #leaves: Array<Uint8Array | undefined> = [];
  /** Who watches the setters (hypervisor/observe/), or undefined: one check per set. */
  #runs: EptRuns | undefined;

  constructor(frames: number) {
    this.frames = frames;
  }

  get generation(): number {
    return this.#generation;
  }

  get(frame: Gfn): number {
    if (!(frame >= 0 && frame < this.frames)) return 0;
    const leaf = this.#leaves[leafIndex(frame)];
    return leaf === undefined ? EPT_DEFAULT : (leaf[frame & LEAF_MASK] as number);
  }

  allows(frame: Gfn, access: AccessKind, mode: AccessMode): boolean {
    return this.check(frame, accessMask(access, mode));
  }

  check(frame: Gfn, m: AccessMask): boolean {
    if (!(frame >= 0 && frame < this.frames)) return false;
    const leaf = this.#leaves[leafIndex(frame)];
    const perms = leaf === undefined ? EPT_DEFAULT : (leaf[frame & LEAF_MASK] as number);
    return (perms & m & 0xff) === m >>> 8;
  }

  /**
   * Reports every later set (and reset) to `runs`, or to nobody (undefined). The core installs
   * it for its observer; `get` and `allows`, the hot path of every guest access, never look.
   */
  watch(runs: EptRuns | undefined): void {
    this.#runs?.flush();
    this.#runs = runs;
  }

  /**
   * Sets the permission bits of `frame`. The caller (the core) has already checked that the
   * change is allowed: this is mechanism, not policy. Throws on an out-of-range frame, which
   * is a broken invariant of the caller.
   */
  set(frame: Gfn, perms: number): void {
    if (!Number.isInteger(frame) || frame < 0 || frame >= this.frames) {
      throw new RangeError(`EPT frame ${frame} outside [0, ${this.frames})`);
    }
    if (this.#runs !== undefined) this.#runs.add(frame, 1, perms);
    const key = leafIndex(frame);
    let leaf = this.#leaves[key];
    if (leaf === undefined) {
      if (perms === EPT_DEFAULT) return;
      leaf = new Uint8Array(LEAF_SIZE).fill(EPT_DEFAULT);
      this.#leaves[key] = leaf;
    }
    if (leaf[frame & LEAF_MASK] !== perms) {
      leaf[frame & LEAF_MASK] = perms;
      this.#generation++;
    }
  }

  /** Sets `count` frames from `first` to `perms`. */
  setRange(first: Gfn, count: number, perms: number): void {
    for (let f = first; f < first + count; f++) this.set(f, perms);
  }

  /**
   * Sets the permission bits of `frame` and keeps its FROZEN bit as it is. INVARIANT: a
   * permission change never thaws a frame that a verification in flight holds frozen.
   */
  setKeepingFrozen(frame: Gfn, perms: number): void {
    this.set(frame, (perms & ~EPT_FROZEN) | (this.get(frame) & EPT_FROZEN));
  }

  /** Marks `frame` FROZEN (write-protected while a verification is in flight). */
  freeze(frame: Gfn): void {
    this.set(frame, this.get(frame) | EPT_FROZEN);
  }

  /** Clears FROZEN on `frame`. */
  thaw(frame: Gfn): void {
    this.set(frame, this.get(frame) & ~EPT_FROZEN);
  }

  /** True when `frame` is IMMUTABLE. */
  isImmutable(frame: Gfn): boolean {
    return (this.get(frame) & EPT_IMMUTABLE) !== 0;
  }

  entries(): Array<[Gfn, number]> {
    const out: Array<[Gfn, number]> = [];
    // forEach visits the leaves in ascending index order and skips the holes.
    this.#leaves.forEach((leaf, key) => {
      if (leaf === undefined) return;
      for (let i = 0; i < LEAF_SIZE; i++) {
        const p = leaf[i] as number;
        if (p !== EPT_DEFAULT) out.push([(key * LEAF_SIZE + i) as Gfn, p]); // an entry of a leaf: a frame below `frames`
      }
    });
    return out;
  }

  /**
   * Takes every frame's permissions from `source` (a fork of a booted VM: the EPT of the VM
   * forked from), as one copy of each leaf: the two never share a leaf, so a later change of
   * one is never seen by the other. Throws RangeError when `source` covers another number of
   * frames, or holds FROZEN frames (a verification in flight: the caller forks an idle VM).
   */
  copyFrom(source: Ept): void {
    if (source.frames !== this.frames) throw new RangeError(`cannot copy an EPT of ${source.frames} frames into one of ${this.frames}`);
    const leaves: Array<Uint8Array | undefined> = [];
    source.#leaves.forEach((leaf, key) => {
      if (leaf === undefined) return;
      for (let i = 0; i < LEAF_SIZE; i++) {
        if (((leaf[i] as number) & EPT_FROZEN) !== 0)
          throw new RangeError(`the EPT to copy holds frozen frames in region ${key} (a verification is in flight)`);
      }
      leaves[key] = leaf.slice();
    });
    this.#leaves = leaves;
    this.#generation++;
    if (this.#runs !== undefined) {
      this.#runs.flush();
      this.#runs.add(0, this.frames, EPT_DEFAULT);
      for (const [f, p] of this.entries()) this.#runs.add(f, 1, p);
      this.#runs.flush();
    }
  }

  /** Every frame back to the default permissions: only a VMM reset does this. */
  reset(): void {
    this.#leaves = [];
    this.#generation++;
    if (this.#runs !== undefined) {
      this.#runs.flush();
      this.#runs.add(0, this.frames, EPT_DEFAULT);
      this.#runs.flush();
    }
  }
}
