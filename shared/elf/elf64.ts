/**
 * The ELF64 little-endian x86-64 reader, for the vmlinux EXEC image and relocatable `.ko`
 * modules alike.
 *
 * TRUST: the bytes may come from an attacker (a module the guest asks to load). Every
 * offset and count is checked against the buffer before it is used to read or to size an
 * allocation, nothing loops on a count that was not bounded by the file size, and every
 * rejection is a typed {@link ElfError}; the parser never throws on bad input.
 */

import { err, ok, type Result } from '../result.ts';
import { elfError, type ElfError } from './errors.ts';
import { parseElf64Header, type Elf64Header } from './header.ts';
import { parseRelaSection, type Elf64RelaSection } from './relocations.ts';
import { parseSections, type Elf64Section } from './sections.ts';
import { parseProgramHeaders, type Elf64ProgramHeader } from './segments.ts';
import { parseSymbolTable, type Elf64Symbol } from './symbols.ts';
import { SHT_NOBITS, SHT_RELA, SHT_SYMTAB } from './types.ts';

/** A parsed ELF64 image. All byte views alias the input buffer; nothing is copied. */
export interface Elf64 {
  /** The whole image, as passed to {@link parseElf64}. */
  readonly bytes: Uint8Array;
  /** The validated file header. */
  readonly header: Elf64Header;
  /** `e_type`: ET_REL (module) or ET_EXEC (vmlinux), or another ET_* value. */
  readonly type: number;
  /** `e_machine`: EM_X86_64. */
  readonly machine: number;
  /** `e_entry`. */
  readonly entry: bigint;
  /** Section headers in table order (index 0 is the null section). */
  readonly sections: readonly Elf64Section[];
  /** Program headers in table order (empty for `.ko` files). */
  readonly programHeaders: readonly Elf64ProgramHeader[];
  /** Symbols of the SHT_SYMTAB section (`.symtab`), or empty when the image is stripped. */
  readonly symbols: readonly Elf64Symbol[];
  /** Index of the SHT_SYMTAB section, or undefined when there is none. */
  readonly symtabIndex: number | undefined;
  /** Every SHT_RELA section with its decoded entries, in section order. */
  readonly relocations: readonly Elf64RelaSection[];
  /**
   * The file bytes of `section` (a subarray of {@link bytes}, no copy). SHT_NOBITS sections
   * have no file bytes and give an empty array.
   */
  sectionBytes(section: Elf64Section): Uint8Array;
  /** The first section called `name`, if any. */
  sectionByName(name: string): Elf64Section | undefined;
}

/**
 * Parses and validates an ELF64 little-endian x86-64 image. Symbols and relocations are
 * decoded eagerly so that every malformation is reported here, once.
 */
export function parseElf64(bytes: Uint8Array): Result<Elf64, ElfError> {
  const header = parseElf64Header(bytes);
  if (!header.ok) return header;
  const h = header.value;

  const table = parseSections(bytes, h);
  if (!table.ok) return table;
  const { sections, phnum } = table.value;

  const phdrs = parseProgramHeaders(bytes, h.phoff, phnum);
  if (!phdrs.ok) return phdrs;

  let symtab: Elf64Section | undefined;
  for (const s of sections) {
    if (s.type !== SHT_SYMTAB) continue;
    if (symtab !== undefined) {
      return err(elfError('multiple-symtabs', `sections ${symtab.index} and ${s.index} are both SHT_SYMTAB`));
    }
    symtab = s;
  }
  let symbols: Elf64Symbol[] = [];
  if (symtab !== undefined) {
    const syms = parseSymbolTable(bytes, sections, symtab);
    if (!syms.ok) return syms;
    symbols = syms.value;
  }

  const relocations: Elf64RelaSection[] = [];
  for (const s of sections) {
    if (s.type !== SHT_RELA) continue;
    const r = parseRelaSection(bytes, sections, s, h.type);
    if (!r.ok) return r;
    relocations.push(r.value);
  }

  const byName = new Map<string, Elf64Section>();
  for (const s of sections) if (!byName.has(s.name)) byName.set(s.name, s);

  return ok({
    bytes,
    header: h,
    type: h.type,
    machine: h.machine,
    entry: h.entry,
    sections,
    programHeaders: phdrs.value,
    symbols,
    symtabIndex: symtab?.index,
    relocations,
    sectionBytes(section: Elf64Section): Uint8Array {
      if (section.type === SHT_NOBITS) return bytes.subarray(0, 0);
      // INVARIANT: parseSections checked [offset, offset + size) lies inside `bytes`.
      return bytes.subarray(section.offset, section.offset + section.size);
    },
    sectionByName(name: string): Elf64Section | undefined {
      return byName.get(name);
    },
  });
}
