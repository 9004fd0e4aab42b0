/**
 * The .xz container records (XZ file format specification 1.0.4, Lasse Collin): stream
 * header and footer, block header with its filter chain, and the index. Every field is
 * bounds-checked and every CRC32 verified; nothing here decompresses.
 */

import { err, ok, type Result } from '../result.ts';
import { crc32 } from './crc.ts';
import { lzma2DictSize } from './lzma2.ts';
import { truncatedAt, xzError, type XzError } from './xz-errors.ts';

/** `FD 37 7A 58 5A 00`: stream header magic. */
export const XZ_HEADER_MAGIC = Uint8Array.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
/** Stream header and footer size. */
export const XZ_STREAM_HEADER_SIZE = 12;

/** Check IDs (spec 3.4). */
export const CHECK_NONE = 0x00;
/** CRC32 check. */
export const CHECK_CRC32 = 0x01;
/** CRC64 check. */
export const CHECK_CRC64 = 0x04;
/** SHA-256 check. */
export const CHECK_SHA256 = 0x0a;

/** Filter IDs (spec 5.3). */
export const FILTER_X86 = 0x04;
/** LZMA2 filter ID. */
export const FILTER_LZMA2 = 0x21;

/** Size in bytes of the check field for a check ID (spec 3.4: IDs come in groups of three). */
export function checkSize(checkId: number): number {
  if (checkId === 0) return 0;
  return 4 << Math.floor((checkId - 1) / 3);
}

/** A readable name for a check ID. */
export function checkName(checkId: number): string {
  switch (checkId) {
    case CHECK_NONE:
      return 'none';
    case CHECK_CRC32:
      return 'CRC32';
    case CHECK_CRC64:
      return 'CRC64';
    case CHECK_SHA256:
      return 'SHA-256';
    default:
      return `0x${checkId.toString(16)}`;
  }
}

function le32(b: Uint8Array, at: number): number {
  return (b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24)) >>> 0;
}

/** A variable-length integer (spec 1.2) and where it ended. */
export interface Vli {
  readonly value: number;
  readonly next: number;
}

/**
 * Reads a multibyte integer at `at`, not past `end`. Values above 2^53 - 1 are rejected
 * (the spec allows 2^63 - 1, but no real size gets near 2^53).
 */
export function readVli(b: Uint8Array, at: number, end: number, what: string): Result<Vli, XzError> {
  let value = 0;
  for (let i = 0; i < 9; i++) {
    if (at + i >= end) return err(truncatedAt(at + i, what));
    const byte = b[at + i]!;
    value += (byte & 0x7f) * 2 ** (7 * i);
    if ((byte & 0x80) === 0) {
      if (byte === 0 && i > 0) return err(xzError('bad-header', `${what} at offset ${at} is not minimally encoded`, at));
      if (value > Number.MAX_SAFE_INTEGER) return err(xzError('bad-header', `${what} at offset ${at} exceeds 2^53`, at));
      return ok({ value, next: at + i + 1 });
    }
  }
  return err(xzError('bad-header', `${what} at offset ${at} is longer than 9 bytes`, at));
}

/** Stream flags, shared by header and footer: just the check ID. */
export interface StreamFlags {
  readonly checkId: number;
}

function parseStreamFlags(b: Uint8Array, at: number, where: string): Result<StreamFlags, XzError> {
  if (b[at] !== 0 || (b[at + 1]! & 0xf0) !== 0) {
    return err(xzError('bad-header', `unsupported stream flags ${b[at]}, ${b[at + 1]} in the stream ${where} at offset ${at}`, at));
  }
  return ok({ checkId: b[at + 1]! & 0x0f });
}

/** Parses the 12-byte stream header at `at`. */
export function parseStreamHeader(b: Uint8Array, at: number, end: number): Result<StreamFlags, XzError> {
  for (let i = 0; i < XZ_HEADER_MAGIC.length; i++) {
    if (at + i >= end) return err(truncatedAt(at + i, 'the stream header'));
    if (b[at + i] !== XZ_HEADER_MAGIC[i]) return err(xzError('bad-magic', `bad magic at offset ${at}: not an .xz stream`, at));
  }
  if (end - at < XZ_STREAM_HEADER_SIZE) return err(truncatedAt(end, 'the stream header'));
  if (crc32(b.subarray(at + 6, at + 8)) !== le32(b, at + 8)) {
    return err(xzError('check-mismatch', `CRC32 mismatch in the stream header at offset ${at}`, at));
  }
  return parseStreamFlags(b, at + 6, 'header');
}

/** The stream footer: the index size it declares and its flags. */
export interface StreamFooter extends StreamFlags {
  /** Size of the index in bytes (Backward Size). */
  readonly indexSize: number;
}

/** Parses the 12-byte stream footer at `at`. */
export function parseStreamFooter(b: Uint8Array, at: number, end: number): Result<StreamFooter, XzError> {
  if (end - at < XZ_STREAM_HEADER_SIZE) return err(truncatedAt(end, 'the stream footer'));
  if (b[at + 10] !== 0x59 || b[at + 11] !== 0x5a) return err(xzError('bad-magic', `bad stream footer magic at offset ${at + 10}`, at + 10));
  if (crc32(b.subarray(at + 4, at + 10)) !== le32(b, at)) {
    return err(xzError('check-mismatch', `CRC32 mismatch in the stream footer at offset ${at}`, at));
  }
  const flags = parseStreamFlags(b, at + 8, 'footer');
  if (!flags.ok) return flags;
  return ok({ checkId: flags.value.checkId, indexSize: (le32(b, at + 4) + 1) * 4 });
}

/** A decoded filter chain of one block. */
export interface BlockHeader {
  /** Size of the block header in bytes. */
  readonly headerSize: number;
  /** Compressed size, when the header declares it. */
  readonly compressedSize: number | undefined;
  /** Uncompressed size, when the header declares it. */
  readonly uncompressedSize: number | undefined;
  /** LZMA2 dictionary size. */
  readonly dictSize: number;
  /** x86 BCJ start offset when the chain begins with the x86 filter. */
  readonly x86StartOffset: number | undefined;
}

/**
 * Parses a block header at `at` (whose first byte is non-zero). Supported chains: LZMA2
 * alone, or x86 BCJ then LZMA2.
 */
export function parseBlockHeader(b: Uint8Array, at: number, end: number, blockNo: number): Result<BlockHeader, XzError> {
  const headerSize = (b[at]! + 1) * 4;
  if (end - at < headerSize) return err(truncatedAt(end, `the header of block ${blockNo}`));
  const crcAt = at + headerSize - 4;
  if (crc32(b.subarray(at, crcAt)) !== le32(b, crcAt)) {
    return err(xzError('check-mismatch', `CRC32 mismatch in the header of block ${blockNo} at offset ${at}`, at));
  }
  const flags = b[at + 1]!;
  if (flags & 0x3c) return err(xzError('bad-header', `reserved flag bits set in the header of block ${blockNo}`, at + 1));
  const nFilters = (flags & 0x03) + 1;
  let p = at + 2;
  let compressedSize: number | undefined;
  let uncompressedSize: number | undefined;
  if (flags & 0x40) {
    const v = readVli(b, p, crcAt, `compressed size of block ${blockNo}`);
    if (!v.ok) return v;
    if (v.value.value === 0) return err(xzError('bad-header', `block ${blockNo} declares a compressed size of 0`, p));
    compressedSize = v.value.value;
    p = v.value.next;
  }
  if (flags & 0x80) {
    const v = readVli(b, p, crcAt, `uncompressed size of block ${blockNo}`);
    if (!v.ok) return v;
    uncompressedSize = v.value.value;
    p = v.value.next;
  }
  let dictSize: number | undefined;
  let x86StartOffset: number | undefined;
  for (let f = 0; f < nFilters; f++) {
    const id = readVli(b, p, crcAt, `filter ID in block ${blockNo}`);
    if (!id.ok) return id;
    const propsSize = readVli(b, id.value.next, crcAt, `filter properties size in block ${blockNo}`);
    if (!propsSize.ok) return propsSize;
    const propsAt = propsSize.value.next;
    const n = propsSize.value.value;
    if (crcAt - propsAt < n) return err(xzError('bad-header', `filter properties overrun the header of block ${blockNo}`, propsAt));
    const last = f === nFilters - 1;
    const fid = id.value.value;
    if (fid === FILTER_LZMA2 && last) {
      if (n !== 1) return err(xzError('bad-header', `LZMA2 properties size ${n} in block ${blockNo}, expected 1`, propsAt));
      dictSize = lzma2DictSize(b[propsAt]!);
      if (dictSize === undefined) return err(xzError('bad-header', `invalid LZMA2 dictionary size byte ${b[propsAt]} in block ${blockNo}`, propsAt));
    } else if (fid === FILTER_X86 && !last && f === 0) {
      if (n === 4) x86StartOffset = le32(b, propsAt);
      else if (n === 0) x86StartOffset = 0;
      else return err(xzError('bad-header', `x86 BCJ properties size ${n} in block ${blockNo}, expected 0 or 4`, propsAt));
    } else {
      const role = last ? 'as the last filter' : 'before LZMA2';
      return err(xzError('unsupported-filter', `unsupported filter 0x${fid.toString(16).padStart(2, '0')} ${role} in block ${blockNo}`, p));
    }
    p = propsAt + n;
  }
  for (let q = p; q < crcAt; q++) {
    if (b[q] !== 0) return err(xzError('bad-header', `non-zero header padding in block ${blockNo}`, q));
  }
  // INVARIANT: the loop above ran for every filter and the last one had to be LZMA2.
  if (dictSize === undefined) return err(xzError('bad-header', `block ${blockNo} has no LZMA2 filter`, at));
  return ok({ headerSize, compressedSize, uncompressedSize, dictSize, x86StartOffset });
}

/** One index record: a block's unpadded size and uncompressed size. */
export interface IndexRecord {
  readonly unpaddedSize: number;
  readonly uncompressedSize: number;
}

/** A parsed index and its size in bytes. */
export interface XzIndex {
  readonly records: readonly IndexRecord[];
  readonly size: number;
}

/**
 * Parses the index at `at` (whose first byte is the 0x00 indicator). The record count is
 * checked against the bytes available before any record is read.
 */
export function parseIndex(b: Uint8Array, at: number, end: number): Result<XzIndex, XzError> {
  const count = readVli(b, at + 1, end, 'the index record count');
  if (!count.ok) return count;
  // INVARIANT: each record takes at least 2 bytes, so a count beyond that is a lie.
  if (count.value.value > (end - count.value.next) / 2) return err(truncatedAt(end, `an index of ${count.value.value} records`));
  let p = count.value.next;
  const records: IndexRecord[] = [];
  for (let i = 0; i < count.value.value; i++) {
    const u = readVli(b, p, end, `index record ${i}`);
    if (!u.ok) return u;
    const s = readVli(b, u.value.next, end, `index record ${i}`);
    if (!s.ok) return s;
    if (u.value.value === 0) return err(xzError('bad-header', `index record ${i} has an unpadded size of 0`, p));
    records.push({ unpaddedSize: u.value.value, uncompressedSize: s.value.value });
    p = s.value.next;
  }
  while ((p - at) % 4 !== 0) {
    if (p >= end) return err(truncatedAt(p, 'the index padding'));
    if (b[p] !== 0) return err(xzError('bad-header', `non-zero index padding at offset ${p}`, p));
    p++;
  }
  if (end - p < 4) return err(truncatedAt(end, 'the index CRC32'));
  if (crc32(b.subarray(at, p)) !== le32(b, p)) return err(xzError('check-mismatch', `CRC32 mismatch in the index at offset ${at}`, at));
  return ok({ records, size: p + 4 - at });
}

/** Reads the little-endian u32 at `at` (for check fields). */
export function readLe32(b: Uint8Array, at: number): number {
  return le32(b, at);
}
