/**
 * UTF-8 strings in and out of the ring's shared memory, without the per-call argument
 * handling of `Buffer#toString` and `Buffer#write` (a measurable part of a one-item round
 * trip). `utf8Slice` and `utf8Write` are the Buffer methods those two end in; they have been on
 * `Buffer.prototype` since Node 0.x but are not in @types/node, hence the local types.
 */

type FastBuffer = Buffer & {
  utf8Slice(start: number, end: number): string;
  utf8Write(text: string, offset: number, length?: number): number;
};

/** The UTF-8 text of `buf[start, end)`; malformed sequences become U+FFFD, never an exception. */
export function readUtf8(buf: Buffer, start: number, end: number): string {
  return start === end ? '' : (buf as FastBuffer).utf8Slice(start, end);
}

/** Writes `text` as UTF-8 at `offset`; returns the bytes written (the caller made room: Buffer.byteLength). */
export function writeUtf8(buf: Buffer, text: string, offset: number): number {
  return text.length === 0 ? 0 : (buf as FastBuffer).utf8Write(text, offset);
}
