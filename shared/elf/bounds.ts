/**
 * Range checks shared by the ELF parsers. ELF offsets and sizes are u64; we keep them as
 * plain numbers only after proving they fit, and compare against the buffer length before
 * any allocation or read.
 */

/** `value` as a number when it is at most 2^53 - 1, else `undefined`. */
export function safeNumber(value: bigint): number | undefined {
  return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= 0n ? Number(value) : undefined;
}

/** True when `[offset, offset + size)` lies inside a buffer of `length` bytes. */
export function rangeInside(offset: number, size: number, length: number): boolean {
  return offset >= 0 && size >= 0 && offset <= length && size <= length - offset;
}
