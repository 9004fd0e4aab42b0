/**
 * A minimal DER walker: just enough to find exact byte ranges inside a CMS blob (the parsed
 * objects of @peculiar/asn1-cms do not keep them) and to check that a blob is one element.
 * Reads only; never throws; anything it does not understand is `undefined`.
 */

/** One DER element: tag byte and where its header and content lie in the buffer. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/**
 * Reads the DER element at `off` that must end by `limit`, or undefined if its header is
 * malformed or it overruns. Single-byte tags and definite lengths only (all CMS needs here).
 */
export function readTlv(b: Uint8Array, off: number, limit: number): Tlv | undefined {
  if (off + 2 > limit) return undefined;
  const tag = b[off]!;
  if ((tag & 0x1f) === 0x1f) return undefined;
  const first = b[off + 1]!;
  let len: number;
  let contentStart: number;
  if (first < 0x80) {
    len = first;
    contentStart = off + 2;
  } else {
    const n = first & 0x7f;
    if (n === 0 || n > 4 || off + 2 + n > limit) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[off + 2 + i]!;
    contentStart = off + 2 + n;
  }
  const end = contentStart + len;
  return end > limit ? undefined : { tag, start: off, contentStart, end };
}

/** The elements inside a constructed element, or undefined if they do not tile its content exactly. */
export function children(b: Uint8Array, parent: Tlv): Tlv[] | undefined {
  const out: Tlv[] = [];
  let off = parent.contentStart;
  while (off < parent.end) {
    const t = readTlv(b, off, parent.end);
    if (t === undefined) return undefined;
    out.push(t);
    off = t.end;
  }
  return out;
}
