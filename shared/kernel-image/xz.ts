/**
 * A hand-written .xz decoder (XZ file format 1.0.4), following xz-embedded's design
 * (`xz_dec_stream.c`, `xz_dec_lzma2.c`, `xz_dec_bcj.c`; Lasse Collin, public domain) in
 * single-call mode: the whole input is in memory and the output buffer doubles as the
 * LZMA dictionary.
 *
 * Supported: concatenated streams with stream padding, multiple blocks, the index, checks
 * none / CRC32 / CRC64 / SHA-256 (all verified), and filter chains LZMA2 or x86 BCJ +
 * LZMA2 — what `xz --check=crc32 --x86 --lzma2=dict=32MiB` writes for a kernel.
 *
 * TRUST: the input may be hostile. Every size is checked before it is used, the output is
 * bounded by `maxOutput`, every loop consumes input or output, and every failure is a
 * typed {@link XzError}.
 */

import { createHash } from 'node:crypto';
import { err, ok, type Result } from '../result.ts';
import { bcjX86Decode } from './bcj-x86.ts';
import { crc32, crc64 } from './crc.ts';
import { LzmaDecoder } from './lzma-decoder.ts';
import { decodeLzma2 } from './lzma2.ts';
import { OutputBuffer } from './output-buffer.ts';
import {
  CHECK_CRC32,
  CHECK_CRC64,
  CHECK_NONE,
  CHECK_SHA256,
  checkName,
  checkSize,
  parseBlockHeader,
  parseIndex,
  parseStreamFooter,
  parseStreamHeader,
  readLe32,
  XZ_STREAM_HEADER_SIZE,
  type IndexRecord,
} from './xz-format.ts';
import { corruptAt, truncatedAt, xzError, type XzError } from './xz-errors.ts';
import { declaredUncompressedSize } from './xz-size-scan.ts';

export type { XzError, XzErrorKind } from './xz-errors.ts';

/** Default output limit: 1 GiB, far above a kernel (the fixture vmlinux is 63 MiB). */
export const XZ_DEFAULT_MAX_OUTPUT = 1 << 30;

/** Options for {@link xzDecompress}. */
export interface XzOptions {
  /** Refuse to produce more than this many bytes (default {@link XZ_DEFAULT_MAX_OUTPUT}). */
  readonly maxOutput?: number;
}

/** Bytes of zero padding after the input so the LZMA loop may over-read (see lzma-decoder.ts). */
const INPUT_PAD = 32;

/** Decompresses a complete .xz file (one or more streams). */
export function xzDecompress(input: Uint8Array, opts: XzOptions = {}): Result<Uint8Array, XzError> {
  const maxOutput = Math.max(0, Math.min(opts.maxOutput ?? XZ_DEFAULT_MAX_OUTPUT, 2 ** 32));
  const declared = declaredUncompressedSize(input);
  if (declared !== undefined && declared > maxOutput) {
    return err(xzError('output-over-limit', `output over limit: the index declares ${declared} bytes, the limit is ${maxOutput}`));
  }
  // The declared size is only a hint bounded by maxOutput; without one, start at 4x the input.
  const out = new OutputBuffer(declared ?? Math.min(input.length * 4, maxOutput), maxOutput);
  const padded = new Uint8Array(input.length + INPUT_PAD);
  padded.set(input);
  const len = input.length;
  const lzma = new LzmaDecoder();

  let pos = 0;
  let blockNo = 0;
  for (;;) {
    const header = parseStreamHeader(padded, pos, len);
    if (!header.ok) return header;
    const checkId = header.value.checkId;
    if (checkId !== CHECK_NONE && checkId !== CHECK_CRC32 && checkId !== CHECK_CRC64 && checkId !== CHECK_SHA256) {
      return err(xzError('unsupported-check', `unsupported check type ${checkName(checkId)} in the stream at offset ${pos}`, pos + 7));
    }
    const streamAt = pos;
    pos += XZ_STREAM_HEADER_SIZE;

    const records: IndexRecord[] = [];
    for (;;) {
      if (pos >= len) return err(truncatedAt(pos, 'a block header or the index'));
      if (padded[pos] === 0) break;
      const r = decodeBlock(padded, len, pos, out, lzma, blockNo, checkId);
      if (!r.ok) return r;
      records.push(r.value.record);
      pos = r.value.next;
      blockNo++;
    }

    const index = parseIndex(padded, pos, len);
    if (!index.ok) return index;
    const mismatch = compareIndex(index.value.records, records, streamAt);
    if (mismatch !== undefined) return err(mismatch);
    pos += index.value.size;

    const footer = parseStreamFooter(padded, pos, len);
    if (!footer.ok) return footer;
    if (footer.value.indexSize !== index.value.size) {
      return err(
        xzError('index-mismatch', `stream footer at offset ${pos} gives an index size of ${footer.value.indexSize}, the index has ${index.value.size}`, pos),
      );
    }
    if (footer.value.checkId !== checkId) {
      return err(xzError('bad-header', `stream footer at offset ${pos} disagrees with the header about the check type`, pos));
    }
    pos += XZ_STREAM_HEADER_SIZE;

    // Stream padding: null bytes, a multiple of four, then end of input or another stream.
    let q = pos;
    while (q < len && padded[q] === 0) q++;
    if ((q - pos) % 4 !== 0) return err(xzError('bad-header', `stream padding at offset ${pos} is ${q - pos} bytes, not a multiple of 4`, pos));
    pos = q;
    if (pos === len) break;
  }
  return ok(out.result());
}

interface BlockResult {
  readonly record: IndexRecord;
  readonly next: number;
}

function decodeBlock(
  b: Uint8Array,
  len: number,
  at: number,
  out: OutputBuffer,
  lzma: LzmaDecoder,
  blockNo: number,
  checkId: number,
): Result<BlockResult, XzError> {
  const h = parseBlockHeader(b, at, len, blockNo);
  if (!h.ok) return h;
  const bh = h.value;
  const dataAt = at + bh.headerSize;
  const outStart = out.length;
  if (bh.uncompressedSize !== undefined && !out.ensure(bh.uncompressedSize)) {
    return err(xzError('output-over-limit', `output over limit: block ${blockNo} declares ${bh.uncompressedSize} bytes, the limit is ${out.limit}`));
  }
  const end = decodeLzma2(b, len, dataAt, out, lzma, bh.dictSize);
  if (!end.ok) return end;
  const compressed = end.value - dataAt;
  const produced = out.length - outStart;
  if (bh.compressedSize !== undefined && bh.compressedSize !== compressed) {
    return err(corruptAt(dataAt, `block ${blockNo} has ${compressed} compressed bytes, its header says ${bh.compressedSize}`));
  }
  if (bh.uncompressedSize !== undefined && bh.uncompressedSize !== produced) {
    return err(corruptAt(dataAt, `block ${blockNo} decoded to ${produced} bytes, its header says ${bh.uncompressedSize}`));
  }
  if (bh.x86StartOffset !== undefined) bcjX86Decode(out.buf, outStart, out.length, bh.x86StartOffset);

  let p = end.value;
  while ((p - at) % 4 !== 0) {
    if (p >= len) return err(truncatedAt(p, `the padding of block ${blockNo}`));
    if (b[p] !== 0) return err(corruptAt(p, `non-zero padding after block ${blockNo}`));
    p++;
  }
  const size = checkSize(checkId);
  if (len - p < size) return err(truncatedAt(len, `the ${checkName(checkId)} check of block ${blockNo}`));
  const data = out.buf.subarray(outStart, out.length);
  if (!checkMatches(checkId, data, b, p)) {
    return err(xzError('check-mismatch', `${checkName(checkId)} mismatch in block ${blockNo} (check field at offset ${p})`, p));
  }
  return ok({ record: { unpaddedSize: bh.headerSize + compressed + size, uncompressedSize: produced }, next: p + size });
}

function checkMatches(checkId: number, data: Uint8Array, b: Uint8Array, at: number): boolean {
  switch (checkId) {
    case CHECK_NONE:
      return true;
    case CHECK_CRC32:
      return crc32(data) === readLe32(b, at);
    case CHECK_CRC64: {
      const c = crc64(data);
      return c.lo === readLe32(b, at) && c.hi === readLe32(b, at + 4);
    }
    case CHECK_SHA256: {
      const d = createHash('sha256').update(data).digest();
      for (let i = 0; i < 32; i++) if (d[i] !== b[at + i]) return false;
      return true;
    }
    default:
      return false;
  }
}

function compareIndex(index: readonly IndexRecord[], seen: readonly IndexRecord[], streamAt: number): XzError | undefined {
  if (index.length !== seen.length) {
    return xzError('index-mismatch', `index of the stream at offset ${streamAt} lists ${index.length} blocks, the stream has ${seen.length}`, streamAt);
  }
  for (let i = 0; i < index.length; i++) {
    const a = index[i]!;
    const s = seen[i]!;
    if (a.unpaddedSize !== s.unpaddedSize || a.uncompressedSize !== s.uncompressedSize) {
      return xzError(
        'index-mismatch',
        `index record ${i} of the stream at offset ${streamAt} (${a.unpaddedSize}/${a.uncompressedSize}) does not match the block (${s.unpaddedSize}/${s.uncompressedSize})`,
        streamAt,
      );
    }
  }
  return undefined;
}
