/**
 * The integrity checks of the .xz format: CRC32 (IEEE 802.3, as zlib) and CRC64 (ECMA-182,
 * reflected, polynomial 0xC96C5795D7870F42), per the XZ file format specification 1.0.4
 * section 3.4. CRC64 is computed on two 32-bit halves so the loop never touches bigint.
 */

import * as zlib from 'node:zlib';

const CRC32_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

function crc32Table(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC32_TABLE[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// zlib.crc32 exists from Node 20.15; the table version covers older 20.x releases.
const nativeCrc32: ((d: Uint8Array) => number) | undefined = typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? (d) => zlib.crc32(d) >>> 0 : undefined;

/** CRC32 of `data` (as zlib's `crc32(0, data)`), an unsigned 32-bit number. */
export function crc32(data: Uint8Array): number {
  return nativeCrc32 !== undefined ? nativeCrc32(data) : crc32Table(data);
}

/** CRC32 with the portable table implementation (for tests comparing the two). */
export function crc32Portable(data: Uint8Array): number {
  return crc32Table(data);
}

const CRC64_LO = new Uint32Array(256);
const CRC64_HI = new Uint32Array(256);
(() => {
  const polyLo = 0xd7870f42;
  const polyHi = 0xc96c5795;
  for (let i = 0; i < 256; i++) {
    let lo = i;
    let hi = 0;
    for (let k = 0; k < 8; k++) {
      const bit = lo & 1;
      lo = ((lo >>> 1) | ((hi & 1) << 31)) >>> 0;
      hi = hi >>> 1;
      if (bit) {
        lo = (lo ^ polyLo) >>> 0;
        hi = (hi ^ polyHi) >>> 0;
      }
    }
    CRC64_LO[i] = lo;
    CRC64_HI[i] = hi;
  }
})();

/** A 64-bit CRC as two unsigned 32-bit halves. */
export interface Crc64 {
  readonly lo: number;
  readonly hi: number;
}

/** CRC64 (xz's `lzma_crc64`) of `data`. */
export function crc64(data: Uint8Array): Crc64 {
  let lo = 0xffffffff;
  let hi = 0xffffffff;
  for (let i = 0; i < data.length; i++) {
    const idx = (lo ^ data[i]!) & 0xff;
    lo = ((lo >>> 8) | (hi << 24)) ^ CRC64_LO[idx]!;
    hi = (hi >>> 8) ^ CRC64_HI[idx]!;
  }
  return { lo: (lo ^ 0xffffffff) >>> 0, hi: (hi ^ 0xffffffff) >>> 0 };
}

/** `crc64(data)` as a bigint, for messages and tests. */
export function crc64BigInt(data: Uint8Array): bigint {
  const c = crc64(data);
  return (BigInt(c.hi) << 32n) | BigInt(c.lo);
}
