/**
 * Why a module could not be laid out, relocated or read. Every error names the problem and,
 * where there is one, the section, symbol or site involved, so a loader (guest) or a verifier
 * can report it as-is. Nothing in shared/module/ throws on bad input; it returns these.
 */

/** The kinds of problem the module core detects. */
export type ModuleErrorKind =
  /** The file is not a well-formed ELF64 x86-64 image (the ELF reader's message). */
  | 'elf'
  /** The signature trailer is malformed (an unsigned file is fine: it is taken whole). */
  | 'signature-trailer'
  /** The ELF is not ET_REL, or has no symbol table. */
  | 'not-a-module'
  /** `.modinfo` is missing or unreadable, or lacks `name`. */
  | 'modinfo'
  /** A section cannot be laid out (writable and executable, too large, bad alignment). */
  | 'section'
  /** A layout someone else chose is wrong (missing, duplicate, misaligned, overlapping, shared page). */
  | 'placement'
  /** A symbol cannot be given a value (SHN_COMMON, unknown section, unloaded section). */
  | 'symbol'
  /** An undefined symbol no export provides. */
  | 'unresolved-symbol'
  /** A relocation cannot be applied (unknown type, nonzero target, overflow, out of bounds). */
  | 'relocation'
  /** `__mcount_loc` or one of its sites is wrong. */
  | 'mcount'
  /** `__jump_table` or one of its entries is wrong. */
  | 'jump-table'
  /** `__ksymtab` / `__ksymtab_gpl` / `__ksymtab_strings` is wrong. */
  | 'ksymtab'
  /** A `.static_call_sites` entry names a trampoline with no key (static_call_add_module()). */
  | 'static-calls'
  /** The module exceeds a size bound this code enforces. */
  | 'limits';

/** A module problem: `kind` for code, `message` for people. */
export interface ModuleError {
  readonly kind: ModuleErrorKind;
  readonly message: string;
  /** The section involved, by name, when there is one. */
  readonly section?: string;
  /** The symbol involved, when there is one. */
  readonly symbol?: string;
}

/** Makes a {@link ModuleError}. */
export function moduleError(kind: ModuleErrorKind, message: string, where: { section?: string; symbol?: string } = {}): ModuleError {
  return { kind, message, ...(where.section !== undefined ? { section: where.section } : {}), ...(where.symbol !== undefined ? { symbol: where.symbol } : {}) };
}
