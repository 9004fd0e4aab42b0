/**
 * The x86 BCJ (branch/call/jump) decoder, filter ID 0x04, after xz-embedded's
 * `bcj_x86()` in `xz_dec_bcj.c` (Lasse Collin and Igor Pavlov, public domain).
 *
 * The encoder turned the rel32 of `e8`/`e9` instructions into absolute addresses so that
 * repeated calls to one function compress well; decoding turns them back. Run once over a
 * whole block's output (single-call mode), with the state starting fresh per block; the
 * last four bytes stay as they are, as in the streaming decoder at end of stream.
 */

const MASK_TO_ALLOWED = [true, true, true, false, true, false, false, false] as const;
const MASK_TO_BIT_NUM = [0, 1, 2, 2, 3, 3, 3, 3] as const;

function isMsByte(b: number): boolean {
  return b === 0x00 || b === 0xff;
}

/**
 * Decodes `buf[start, end)` in place. `startPos` is the filter's start offset (the BCJ
 * property, 0 by default): the uncompressed position that `buf[start]` stands for.
 */
export function bcjX86Decode(buf: Uint8Array, start: number, end: number, startPos = 0): void {
  const size = end - start;
  if (size <= 4) return;
  const limit = size - 4;
  let prevPos = -1;
  let prevMask = 0;
  for (let i = 0; i < limit; i++) {
    const at = start + i;
    if ((buf[at]! & 0xfe) !== 0xe8) continue;
    const gap = i - prevPos;
    if (gap > 3) {
      prevMask = 0;
    } else {
      prevMask = (prevMask << (gap - 1)) & 7;
      if (prevMask !== 0) {
        const b = buf[at + 4 - MASK_TO_BIT_NUM[prevMask]!]!;
        if (!MASK_TO_ALLOWED[prevMask] || isMsByte(b)) {
          prevPos = i;
          prevMask = (prevMask << 1) | 1;
          continue;
        }
      }
    }
    prevPos = i;
    if (isMsByte(buf[at + 4]!)) {
      let src = (buf[at + 1]! | (buf[at + 2]! << 8) | (buf[at + 3]! << 16) | (buf[at + 4]! << 24)) >>> 0;
      let dest: number;
      for (;;) {
        dest = (src - ((startPos + i + 5) >>> 0)) >>> 0;
        if (prevMask === 0) break;
        const j = MASK_TO_BIT_NUM[prevMask]! * 8;
        const b = (dest >>> (24 - j)) & 0xff;
        if (!isMsByte(b)) break;
        src = (dest ^ ((1 << (32 - j)) - 1)) >>> 0;
      }
      dest &= 0x01ffffff;
      if (dest & 0x01000000) dest |= 0xff000000;
      buf[at + 1] = dest & 0xff;
      buf[at + 2] = (dest >>> 8) & 0xff;
      buf[at + 3] = (dest >>> 16) & 0xff;
      buf[at + 4] = (dest >>> 24) & 0xff;
      i += 4;
    } else {
      prevMask = (prevMask << 1) | 1;
    }
  }
}
