/**
 * Why an .xz input was rejected. Each kind carries a message naming the problem, and where
 * it applies the byte offset in the input or the block number.
 */

/** The kinds of failure the XZ decoder reports. */
export type XzErrorKind =
  | 'bad-magic'
  | 'truncated'
  | 'bad-header'
  | 'unsupported-filter'
  | 'unsupported-check'
  | 'corrupt-data'
  | 'check-mismatch'
  | 'index-mismatch'
  | 'output-over-limit';

/** A rejected .xz input: `kind` for code, `message` for people. */
export interface XzError {
  readonly kind: XzErrorKind;
  readonly message: string;
  /** Byte offset in the input where the problem was found, when known. */
  readonly offset?: number;
}

/** Makes an {@link XzError}; the message is prefixed with "xz: ". */
export function xzError(kind: XzErrorKind, message: string, offset?: number): XzError {
  return offset === undefined ? { kind, message: `xz: ${message}` } : { kind, message: `xz: ${message}`, offset };
}

/** "corrupt data at offset N" with a detail. */
export function corruptAt(offset: number, detail: string): XzError {
  return xzError('corrupt-data', `corrupt data at offset ${offset}: ${detail}`, offset);
}

/** "truncated input" at an offset, naming what was being read. */
export function truncatedAt(offset: number, what: string): XzError {
  return xzError('truncated', `truncated input at offset ${offset} while reading ${what}`, offset);
}
