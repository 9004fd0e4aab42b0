/**
 * A single-producer, single-consumer ring of messages in shared memory (one direction of the
 * verification ring, shared/ring/layout.ts). The producer reserves contiguous space, writes a
 * message and commits it; the consumer peeks at the next message, reads it and releases it.
 *
 * Positions are free-running u32 counters in the control words; `head - tail` (mod 2^32) is
 * the number of bytes in use. Messages never wrap: a message that does not fit before the end
 * is preceded by a {@link WRAP_MAGIC} word, and the consumer skips to the start.
 *
 * INVARIANT: the producer's data writes happen before its `Atomics.store` of the head, and the
 * consumer reads data only after its `Atomics.load` of the head returns that position; the
 * sequentially consistent atomics order them (the same holds for the tail in the other
 * direction), so neither side reads bytes the other is still writing.
 */
import { WRAP_MAGIC } from './layout.ts';

/** One direction of the ring. */
export class SpscRing {
  /** Bytes of the ring (a power of two). */
  readonly capacity: number;
  /** The ring's bytes. */
  readonly u8: Uint8Array;
  /** The same bytes as u32 words (host order). */
  readonly u32: Uint32Array;
  /** The same bytes as f64 words (host order). */
  readonly f64: Float64Array;
  /** The same bytes as a Buffer, for UTF-8 strings. */
  readonly buf: Buffer;
  readonly #ctl: Int32Array;
  readonly #headIdx: number;
  readonly #tailIdx: number;
  readonly #mask: number;
  /** Bytes the reserved message advances the head by (wrap padding included), 0 when none. */
  #pending = 0;

  constructor(sab: SharedArrayBuffer, offset: number, capacity: number, ctl: Int32Array, headIdx: number, tailIdx: number) {
    if ((capacity & (capacity - 1)) !== 0 || capacity < 64) throw new RangeError(`ring capacity ${capacity} must be a power of two of at least 64`);
    if (offset % 8 !== 0) throw new RangeError(`ring offset ${offset} must be 8-aligned`);
    this.capacity = capacity;
    this.u8 = new Uint8Array(sab, offset, capacity);
    this.u32 = new Uint32Array(sab, offset, capacity >>> 2);
    this.f64 = new Float64Array(sab, offset, capacity >>> 3);
    this.buf = Buffer.from(sab, offset, capacity);
    this.#ctl = ctl;
    this.#headIdx = headIdx;
    this.#tailIdx = tailIdx;
    this.#mask = capacity - 1;
  }

  /** Bytes in use now (messages not yet released, wrap padding included). */
  get used(): number {
    return (Atomics.load(this.#ctl, this.#headIdx) - Atomics.load(this.#ctl, this.#tailIdx)) >>> 0;
  }

  /** The head position (producer side), for waiters. */
  get head(): number {
    return Atomics.load(this.#ctl, this.#headIdx);
  }

  // ------------------------------------------------------------------ producer

  /**
   * Reserves `size` contiguous bytes (a multiple of 8) for the next message, keeping `keep`
   * bytes free after it. Returns the offset to write at, or -1 when there is no room (nothing
   * changes then). Call {@link commit} to publish it.
   */
  reserve(size: number, keep = 0): number {
    if (this.#pending !== 0) throw new Error('SpscRing.reserve: the previous reservation was not committed');
    if (size % 8 !== 0 || size <= 0 || size > this.capacity) return -1;
    const head = Atomics.load(this.#ctl, this.#headIdx) >>> 0;
    const tail = Atomics.load(this.#ctl, this.#tailIdx) >>> 0;
    const used = (head - tail) >>> 0;
    const off = head & this.#mask;
    const toEnd = this.capacity - off;
    const waste = size > toEnd ? toEnd : 0;
    if (this.capacity - used < size + waste + keep) return -1;
    if (waste !== 0) this.u32[off >>> 2] = WRAP_MAGIC;
    this.#pending = waste + size;
    return waste !== 0 ? 0 : off;
  }

  /** Publishes the reserved message. */
  commit(): void {
    const head = Atomics.load(this.#ctl, this.#headIdx) >>> 0;
    Atomics.store(this.#ctl, this.#headIdx, (head + this.#pending) | 0);
    this.#pending = 0;
  }

  /** Drops a reservation without publishing it. */
  abandon(): void {
    this.#pending = 0;
  }

  // ------------------------------------------------------------------ consumer

  /**
   * Offset of the next message, or -1 when the ring is empty. Wrap markers are consumed here.
   * The message's first word is its magic; the caller validates everything else.
   */
  peek(): number {
    for (;;) {
      const head = Atomics.load(this.#ctl, this.#headIdx) >>> 0;
      const tail = Atomics.load(this.#ctl, this.#tailIdx) >>> 0;
      if (head === tail) return -1;
      const off = tail & this.#mask;
      if (this.u32[off >>> 2] !== WRAP_MAGIC) return off;
      Atomics.store(this.#ctl, this.#tailIdx, (tail + this.capacity - off) | 0);
    }
  }

  /** Bytes published after the message at the tail starts (what the consumer may read). */
  available(): number {
    const head = Atomics.load(this.#ctl, this.#headIdx) >>> 0;
    const tail = Atomics.load(this.#ctl, this.#tailIdx) >>> 0;
    return Math.min((head - tail) >>> 0, this.capacity - (tail & this.#mask));
  }

  /** Releases the message at the tail, `size` bytes (checked by the caller against {@link available}). */
  release(size: number): void {
    const tail = Atomics.load(this.#ctl, this.#tailIdx) >>> 0;
    Atomics.store(this.#ctl, this.#tailIdx, (tail + size) | 0);
  }

  /** Releases everything published (the consumer lost its place after a malformed message). */
  releaseAll(): void {
    Atomics.store(this.#ctl, this.#tailIdx, Atomics.load(this.#ctl, this.#headIdx));
  }
}
