/**
 * The guest kernel's page allocator: hands out and takes back 4 KiB physical frames of the
 * RAM that the kernel image and the boot page tables do not use. A bitmap, first fit with a
 * moving hint, like a much simplified buddy allocator at order 0.
 */

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
