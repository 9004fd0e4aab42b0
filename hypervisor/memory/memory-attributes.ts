/**
 * Which guest frames are private to the guest and which it shared with the host, in the
 * protected-memory mode (after the KVM protected-memory RFC of 2020 and today's
 * `KVM_SET_MEMORY_ATTRIBUTES` with `KVM_MEMORY_ATTRIBUTE_PRIVATE`).
 *
 * In protected mode every frame starts private, as an SEV or TDX guest's memory does; the
 * guest shares a range with `KVM_HC_MAP_GPA_RANGE` (decrypted) and takes it back (encrypted).
 * Outside protected mode every frame is shared: the VMM may copy any of it, as a plain KVM
 * VMM can.
 *
 * The attributes belong to the core (KVM), not to the VMM: the VMM's copy paths
 * (hypervisor/vmm/host-memory.ts) consult the read-only {@link MemoryAttributesView} and
 * cannot change it. Storage is sparse like the EPT's: a 4096-frame region nobody shared has
 * no leaf.
 */
import type { Gfn } from '../../shared/addr.ts';

const LEAF_SHIFT = 12;
const LEAF_FRAMES = 1 << LEAF_SHIFT;
const LEAF_MASK = LEAF_FRAMES - 1;

/** What the VMM may look at: never change. */
export interface MemoryAttributesView {
  /** True when the VM runs in protected-memory mode. */
  readonly protected: boolean;
  /** True when `frame` is private to the guest (always false outside protected mode). */
  isPrivate(frame: Gfn): boolean;
  /** Number of frames currently shared with the host (all of them outside protected mode). */
  sharedCount(): number;
  /** Increases on every change. */
  readonly generation: number;
}

/** The attributes with their setter; held by the core. */
export class MemoryAttributes implements MemoryAttributesView {
  readonly protected: boolean;
  readonly #frames: number;
  // INVARIANT: bit (frame & LEAF_MASK) of leaf (frame >> LEAF_SHIFT) is set when the frame
  // is shared; leaves are LEAF_FRAMES / 8 bytes; frames are < #frames.
  readonly #leaves = new Map<number, Uint8Array>();
  #shared = 0;
  #generation = 0;

  constructor(frames: number, protectedMode: boolean) {
    this.#frames = frames;
    this.protected = protectedMode;
  }

  get generation(): number {
    return this.#generation;
  }

  isPrivate(frame: Gfn): boolean {
    if (!this.protected) return false;
    const leaf = this.#leaves.get(frame >> LEAF_SHIFT);
    if (leaf === undefined) return true;
    const i = frame & LEAF_MASK;
    return ((leaf[i >> 3] as number) & (1 << (i & 7))) === 0;
  }

  sharedCount(): number {
    return this.protected ? this.#shared : this.#frames;
  }

  /**
   * Makes `count` frames from `first` private or shared. Mechanism only: the hypercall
   * validated the range. Throws on a range outside guest memory (a broken caller invariant)
   * or outside protected mode (nothing is private there).
   */
  setPrivate(first: Gfn, count: number, priv: boolean): void {
    if (!this.protected) throw new Error('memory attributes change only in protected-memory mode');
    if (!Number.isSafeInteger(first) || !Number.isSafeInteger(count) || first < 0 || count < 0 || first + count > this.#frames) {
      throw new RangeError(`frames [${first}, ${first}+${count}) outside [0, ${this.#frames})`);
    }
    for (let f = first; f < first + count; f++) {
      const key = f >> LEAF_SHIFT;
      let leaf = this.#leaves.get(key);
      if (leaf === undefined) {
        if (priv) continue;
        leaf = new Uint8Array(LEAF_FRAMES >> 3);
        this.#leaves.set(key, leaf);
      }
      const i = f & LEAF_MASK;
      const bit = 1 << (i & 7);
      const was = ((leaf[i >> 3] as number) & bit) !== 0;
      if (was === !priv) continue;
      leaf[i >> 3] = priv ? (leaf[i >> 3] as number) & ~bit : (leaf[i >> 3] as number) | bit;
      this.#shared += priv ? -1 : 1;
    }
    this.#generation++;
  }

  /** The shared frames, ascending (every frame outside protected mode is shared: empty then). */
  sharedFrames(): Gfn[] {
    const out: Gfn[] = [];
    if (!this.protected) return out;
    for (const key of [...this.#leaves.keys()].sort((a, b) => a - b)) {
      const leaf = this.#leaves.get(key) as Uint8Array;
      for (let i = 0; i < LEAF_FRAMES; i++) if (((leaf[i >> 3] as number) & (1 << (i & 7))) !== 0) out.push(((key << LEAF_SHIFT) + i) as Gfn); // a bit of a leaf: a frame below #frames
    }
    return out;
  }

  /** Every frame private again (a VMM reset of a protected VM). */
  reset(): void {
    this.#leaves.clear();
    this.#shared = 0;
    this.#generation++;
  }
}
