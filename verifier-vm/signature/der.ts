/**
 * A minimal DER walker: just enough to find exact byte ranges inside a CMS blob or a
 * certificate (the parsed objects of @peculiar/asn1-cms do not keep them), and a strict DER
 * check of a whole blob. Reads only; never throws; anything it does not understand is
 * `undefined` (walker) or a named problem (check).
 */

/** One DER element: tag byte and where its header and content lie in the buffer. */
export interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly contentStart: number;
  readonly end: number;
}

/** An element's header as read, or the problem that stops reading it (at `at`). */
type Header = Tlv & { readonly notShortest?: string };

/**
 * Reads the header of the element at `off` that must end by `limit`: single-byte tags and
 * definite lengths of at most 4 bytes. A length in a longer form than needed is read and
 * flagged in `notShortest` (the walker takes it, the DER check refuses it).
 */
function readHeader(b: Uint8Array, off: number, limit: number): Header | DerViolation {
  if (off + 2 > limit) return { offset: off, problem: 'element header overruns its container' };
  const tag = b[off]!;
  if ((tag & 0x1f) === 0x1f) return { offset: off, problem: `high tag number form (tag byte 0x${hex2(tag)})` };
  const first = b[off + 1]!;
  if (first < 0x80) return tlvOrOverrun(off, tag, off + 2, first, limit);
  if (first === 0x80) return { offset: off + 1, problem: 'indefinite length (BER, not DER)' };
  const n = first & 0x7f;
  if (n > 4) return { offset: off + 1, problem: `length of ${n} bytes` };
  if (off + 2 + n > limit) return { offset: off + 1, problem: 'length overruns its container' };
  let len = 0;
  for (let i = 0; i < n; i++) len = len * 256 + b[off + 2 + i]!;
  const h = tlvOrOverrun(off, tag, off + 2 + n, len, limit);
  if ('problem' in h) return h;
  if (b[off + 2] === 0) return { ...h, notShortest: 'length not in the shortest form (leading zero byte)' };
  if (len < 0x80) return { ...h, notShortest: `length ${len} in the long form (DER uses the short form below 128)` };
  return h;
}

function tlvOrOverrun(off: number, tag: number, contentStart: number, len: number, limit: number): Tlv | DerViolation {
  const end = contentStart + len;
  return end > limit ? { offset: off, problem: `content of ${len} bytes overruns its container` } : { tag, start: off, contentStart, end };
}

/**
 * Reads the DER element at `off` that must end by `limit`, or undefined if its header is
 * malformed or it overruns. Single-byte tags and definite lengths only (all CMS needs here).
 */
export function readTlv(b: Uint8Array, off: number, limit: number): Tlv | undefined {
  const h = readHeader(b, off, limit);
  return 'problem' in h ? undefined : { tag: h.tag, start: h.start, contentStart: h.contentStart, end: h.end };
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

/**
 * Follows `path` (child indexes) down from the element at offset 0, or undefined when an
 * element on the way is missing or malformed. `path` [] is the outer element itself.
 */
export function tlvAt(b: Uint8Array, path: readonly number[]): Tlv | undefined {
  let t = readTlv(b, 0, b.length);
  for (const i of path) {
    if (t === undefined) return undefined;
    t = children(b, t)?.[i];
  }
  return t;
}

/** Where a blob breaks the DER rules, and which rule. */
export interface DerViolation {
  /** Offset of the element (its tag byte) or header byte at fault. */
  readonly offset: number;
  readonly problem: string;
}

/** Nesting deeper than this is refused (certificates and CMS blobs need about 12). */
const MAX_DER_DEPTH = 32;

/** Universal tags that DER encodes as constructed (X.690 10.2: strings are always primitive). */
const CONSTRUCTED_UNIVERSAL = new Set([0x30, 0x31]);

/**
 * Checks that `b` is exactly one DER element whose every nested element is DER (X.690
 * section 10): a low tag number (all CMS and X.509 tags are), a definite length in the
 * shortest form (short form below 128; long form without a leading zero byte), universal
 * strings primitive, constructed elements tiled exactly by their children, and the
 * content rules DER adds for the universal types it can see: INTEGER and ENUMERATED
 * non-empty and minimal (no leading 00 before a byte < 0x80, no leading ff before a byte >=
 * 0x80: X.690 8.3.2), BOOLEAN 00 or ff, NULL empty, BIT STRING with 0-7 unused bits that
 * are zero, OBJECT IDENTIFIER with minimal sub-identifiers. Returns the first violation, or
 * undefined when `b` is DER. Implicitly tagged primitives are opaque (their type is unknown
 * here), and SET OF ordering is not checked. Never throws.
 */
export function derViolation(b: Uint8Array): DerViolation | undefined {
  if (b.length === 0) return { offset: 0, problem: 'empty input, not a DER element' };
  const r = checkElement(b, 0, b.length, 0);
  if (typeof r !== 'number') return r;
  return r === b.length ? undefined : { offset: r, problem: `${b.length - r} bytes after the outer element` };
}

/** Checks the element at `off` (ending by `limit`); its end offset, or the violation. */
function checkElement(b: Uint8Array, off: number, limit: number, depth: number): number | DerViolation {
  if (depth > MAX_DER_DEPTH) return { offset: off, problem: `nested more than ${MAX_DER_DEPTH} deep` };
  const h = readHeader(b, off, limit);
  if ('problem' in h) return h;
  if (h.notShortest !== undefined) return { offset: off + 1, problem: h.notShortest };
  const { tag, contentStart, end } = h;
  const constructed = (tag & 0x20) !== 0;
  const universal = (tag & 0xc0) === 0;
  if (constructed) {
    if (universal && !CONSTRUCTED_UNIVERSAL.has(tag)) return { offset: off, problem: `constructed encoding of universal tag ${tag & 0x1f} (DER: primitive)` };
    let at = contentStart;
    while (at < end) {
      const r = checkElement(b, at, end, depth + 1);
      if (typeof r !== 'number') return r;
      at = r;
    }
    return end;
  }
  const problem = universal ? primitiveProblem(tag, b.subarray(contentStart, end)) : undefined;
  return problem === undefined ? end : { offset: off, problem };
}

/** The DER content rule a universal primitive of type `tag` breaks, if any. */
function primitiveProblem(tag: number, c: Uint8Array): string | undefined {
  switch (tag) {
    case 0x01:
      return c.length === 1 && (c[0] === 0 || c[0] === 0xff) ? undefined : 'BOOLEAN not one byte 00 or ff';
    case 0x02:
    case 0x0a: {
      const what = tag === 0x02 ? 'INTEGER' : 'ENUMERATED';
      if (c.length === 0) return `empty ${what}`;
      if (c.length > 1 && ((c[0] === 0 && c[1]! < 0x80) || (c[0] === 0xff && c[1]! >= 0x80))) {
        return `${what} not minimally encoded (redundant leading 0x${hex2(c[0]!)} byte)`;
      }
      return undefined;
    }
    case 0x03: {
      if (c.length === 0) return 'empty BIT STRING';
      const unused = c[0]!;
      if (unused > 7 || (c.length === 1 && unused !== 0)) return `BIT STRING with ${unused} unused bits`;
      return c.length > 1 && (c[c.length - 1]! & ((1 << unused) - 1)) !== 0 ? 'BIT STRING with unused bits not zero' : undefined;
    }
    case 0x05:
      return c.length === 0 ? undefined : 'NULL with content';
    case 0x06: {
      if (c.length === 0) return 'empty OBJECT IDENTIFIER';
      if ((c[c.length - 1]! & 0x80) !== 0) return 'OBJECT IDENTIFIER ends inside a sub-identifier';
      for (let i = 0; i < c.length; i++) {
        if (c[i] === 0x80 && (i === 0 || (c[i - 1]! & 0x80) === 0)) return 'OBJECT IDENTIFIER sub-identifier with a leading 0x80 byte';
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
