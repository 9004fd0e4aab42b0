/**
 * The decompressor's output, which is also the LZMA dictionary (single-call mode, as
 * xz-embedded uses for the kernel). Preallocated when the container declares the total size,
 * grown by doubling otherwise; never beyond the caller's limit.
 */

/** A growable byte buffer with a hard size limit. */
export class OutputBuffer {
  /** The backing store; replaced when it grows, so re-read it after {@link ensure}. */
  buf: Uint8Array;
  /** Bytes written so far. */
  length = 0;

  /**
   * @param initial bytes to allocate up front (clamped to `limit`)
   * @param limit the most bytes this buffer will ever hold
   */
  constructor(
    initial: number,
    readonly limit: number,
  ) {
    this.buf = new Uint8Array(Math.max(0, Math.min(initial, limit)));
  }

  /** Makes room for `more` bytes after `length`; false when that would pass the limit. */
  ensure(more: number): boolean {
    const need = this.length + more;
    if (need > this.limit) return false;
    if (need <= this.buf.length) return true;
    let size = Math.max(this.buf.length * 2, 1 << 20);
    while (size < need) size *= 2;
    const grown = new Uint8Array(Math.min(size, this.limit));
    grown.set(this.buf.subarray(0, this.length));
    this.buf = grown;
    return true;
  }

  /** The written bytes: the buffer itself when it is exactly full, else a trimmed copy. */
  result(): Uint8Array {
    return this.length === this.buf.length ? this.buf : this.buf.slice(0, this.length);
  }
}
