/**
 * The LZMA2 chunk layer (xz-embedded's `xz_dec_lzma2_run`, single-call form): control
 * bytes, chunk sizes, dictionary and state resets, and uncompressed chunks. LZMA chunks
 * are handed to {@link LzmaDecoder}.
 *
 * Control byte (from xz_dec_lzma2.c):
 *   0x00 end marker; 0x01 dictionary reset + uncompressed chunk; 0x02 uncompressed chunk;
 *   0xE0.. dictionary reset + new props + state reset; 0xC0.. new props + state reset;
 *   0xA0.. state reset; 0x80.. plain LZMA chunk. Bits 0-4 of an LZMA control byte are
 *   bits 16-20 of the chunk's uncompressed size.
 */

import { err, ok, type Result } from '../result.ts';
import { LZMA_CORRUPT, type LzmaDecoder } from './lzma-decoder.ts';
import type { OutputBuffer } from './output-buffer.ts';
import { corruptAt, truncatedAt, xzError, type XzError } from './xz-errors.ts';

/** Range-coder init bytes at the start of every LZMA chunk (RC_INIT_BYTES). */
const RC_INIT_BYTES = 5;

/**
 * Dictionary size from the LZMA2 filter-properties byte (XZ spec 5.3.1): `2 | (b & 1)`
 * shifted by `b / 2 + 11`, with 40 meaning 4 GiB - 1. Undefined for values above 40.
 */
export function lzma2DictSize(props: number): number | undefined {
  if (props > 40) return undefined;
  if (props === 40) return 0xffffffff;
  return (2 | (props & 1)) * 2 ** ((props >>> 1) + 11);
}

/**
 * Decodes one LZMA2 stream (the data of one .xz block) starting at `input[ip]`, appending to
 * `out`. `inputLen` is the real input length (`input` itself is padded). Returns the offset
 * just after the end marker.
 */
export function decodeLzma2(input: Uint8Array, inputLen: number, ip: number, out: OutputBuffer, lzma: LzmaDecoder, dictSize: number): Result<number, XzError> {
  let needDictReset = true;
  let needProps = true;
  let dictStart = out.length;
  for (;;) {
    if (ip >= inputLen) return err(truncatedAt(ip, 'an LZMA2 control byte'));
    const at = ip;
    const control = input[ip++]!;
    if (control === 0x00) return ok(ip);

    if (control >= 0xe0 || control === 0x01) {
      needProps = true;
      needDictReset = false;
      dictStart = out.length;
    } else if (needDictReset) {
      return err(corruptAt(at, `LZMA2 chunk 0x${control.toString(16)} without the required dictionary reset`));
    }

    if (control >= 0x80) {
      const headerLen = control >= 0xc0 ? 5 : 4;
      if (inputLen - ip < headerLen) return err(truncatedAt(ip, 'an LZMA2 chunk header'));
      const unc = (control & 0x1f) * 65536 + (input[ip]! << 8) + input[ip + 1]! + 1;
      const comp = (input[ip + 2]! << 8) + input[ip + 3]! + 1;
      ip += 4;
      if (control >= 0xc0) {
        const props = input[ip++]!;
        if (!lzma.setProps(props)) return err(corruptAt(ip - 1, `invalid LZMA properties byte 0x${props.toString(16)}`));
        needProps = false;
      } else if (needProps) {
        return err(corruptAt(at, 'LZMA chunk without the required properties reset'));
      } else if (control >= 0xa0) {
        lzma.resetState();
      }
      if (comp < RC_INIT_BYTES) return err(corruptAt(at, `LZMA chunk of ${comp} compressed bytes is too short`));
      if (inputLen - ip < comp) return err(truncatedAt(inputLen, `an LZMA chunk of ${comp} bytes starting at offset ${ip}`));
      if (!out.ensure(unc)) return err(overLimit(out));
      const end = lzma.decodeChunk(input, ip, ip + comp, out.buf, out.length, out.length + unc, dictStart, dictSize);
      if (end === LZMA_CORRUPT) return err(corruptAt(lzma.errorOffset, lzma.errorDetail));
      out.length += unc;
      ip = end;
    } else {
      if (control > 0x02) return err(corruptAt(at, `invalid LZMA2 control byte 0x${control.toString(16)}`));
      if (inputLen - ip < 2) return err(truncatedAt(ip, 'an uncompressed LZMA2 chunk header'));
      const size = (input[ip]! << 8) + input[ip + 1]! + 1;
      ip += 2;
      if (inputLen - ip < size) return err(truncatedAt(inputLen, `an uncompressed chunk of ${size} bytes starting at offset ${ip}`));
      if (!out.ensure(size)) return err(overLimit(out));
      out.buf.set(input.subarray(ip, ip + size), out.length);
      out.length += size;
      ip += size;
    }
  }
}

function overLimit(out: OutputBuffer): XzError {
  return xzError('output-over-limit', `output over limit: more than ${out.limit} bytes`);
}
