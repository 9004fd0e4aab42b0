/**
 * Why an ELF64 image was rejected. Every kind carries a message naming the problem (and the
 * section or entry involved), so callers at a trust boundary can report it as-is.
 */

/** The kinds of malformed input the ELF reader detects. */
export type ElfErrorKind =
  | 'bad-magic'
  | 'not-elfclass64'
  | 'not-little-endian'
  | 'bad-version'
  | 'wrong-machine'
  | 'truncated-header'
  | 'bad-header-size'
  | 'section-table-out-of-bounds'
  | 'program-table-out-of-bounds'
  | 'segment-out-of-bounds'
  | 'section-out-of-bounds'
  | 'bad-string-table-index'
  | 'bad-section-name'
  | 'bad-section-link'
  | 'symtab-entsize'
  | 'symtab-size'
  | 'multiple-symtabs'
  | 'bad-symbol-name'
  | 'bad-symbol-shndx'
  | 'symbol-size-too-large'
  | 'rela-entsize'
  | 'rela-size'
  | 'rela-bad-target'
  | 'rela-bad-symbol'
  | 'rela-offset-out-of-bounds';

/** A rejected ELF64 image: `kind` for code, `message` for people. */
export interface ElfError {
  readonly kind: ElfErrorKind;
  readonly message: string;
}

/** Makes an {@link ElfError}; the message is prefixed with "ELF: ". */
export function elfError(kind: ElfErrorKind, message: string): ElfError {
  return { kind, message: `ELF: ${message}` };
}
