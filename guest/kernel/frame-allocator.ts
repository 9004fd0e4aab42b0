/**
 * The guest kernel's page allocator: hands out and takes back 4 KiB physical frames of the
 * RAM that the kernel image and the boot page tables do not use. A bitmap, first fit with a
 * moving hint, like a much simplified buddy allocator at order 0.
 */

/** The allocator's state as plain data (a hibernation image or a migration carries it). */
export interface FrameAllocatorState {
  readonly start: bigint;
  readonly end: bigint;
  /** One byte per frame: 1 when in use. */
  readonly used: Uint8Array;
  readonly hint: number;
}

/** Page allocator over [start, end) physical. */
export class FrameAllocator {
  readonly #first: number;
  readonly #used: Uint8Array;
  #hint = 0;
  #free: number;

  constructor(start: bigint, end: bigint) {
    this.#first = Number(start >> 12n);
    const n = Number((end - start) >> 12n);
    this.#used = new Uint8Array(n);
    this.#free = n;
  }

  /** The state as plain data. */
  exportState(): FrameAllocatorState {
    return {
      start: BigInt(this.#first) << 12n,
      end: (BigInt(this.#first) + BigInt(this.#used.length)) << 12n,
      used: Uint8Array.from(this.#used),
      hint: this.#hint,
    };
  }

  /** An allocator in `state` (as {@link exportState} gave it). */
  static fromState(state: FrameAllocatorState): FrameAllocator {
    const a = new FrameAllocator(state.start, state.end);
    if (state.used.length !== a.#used.length) throw new RangeError(`allocator state has ${state.used.length} frames, the range ${a.#used.length}`);
    a.#used.set(state.used);
    a.#hint = state.hint;
    a.#free = state.used.reduce((n, b) => n + (b === 0 ? 1 : 0), 0);
    return a;
  }

  /** The physical address where the managed range ends: the end of the guest's RAM for the kernel's allocator. */
  get end(): bigint {
    return (BigInt(this.#first) + BigInt(this.#used.length)) << 12n;
  }

  /** Frames still free. */
  get free(): number {
    return this.#free;
  }

  /** One free frame's physical address, or undefined when memory is exhausted. */
  alloc(): bigint | undefined {
    const n = this.#used.length;
    for (let k = 0; k < n; k++) {
      const i = (this.#hint + k) % n;
      if (this.#used[i] === 0) {
        this.#used[i] = 1;
        this.#hint = i + 1;
        this.#free--;
        return BigInt(this.#first + i) << 12n;
      }
    }
    return undefined;
  }

  /** `count` physically contiguous frames (for buffers handed to the hypervisor), or undefined. */
  allocContiguous(count: number): bigint | undefined {
    let run = 0;
    for (let i = 0; i < this.#used.length; i++) {
      run = this.#used[i] === 0 ? run + 1 : 0;
      if (run === count) {
        const start = i - count + 1;
        this.#used.fill(1, start, i + 1);
        this.#free -= count;
        return BigInt(this.#first + start) << 12n;
      }
    }
    return undefined;
  }

  /** Returns a frame. Freeing a frame twice or one outside the range is a kernel bug (throws). */
  release(pa: bigint): void {
    const i = Number(pa >> 12n) - this.#first;
    if (i < 0 || i >= this.#used.length || this.#used[i] === 0) throw new Error(`bad free of frame 0x${pa.toString(16)}`);
    this.#used[i] = 0;
    this.#free++;
  }
}
