/**
 * ELF64 relocation sections with addends (SHT_RELA, `Elf64_Rela[]`), as a module loader
 * applies them: each entry patches bytes of the section named by the RELA section's
 * `sh_info`, using a symbol of the table named by its `sh_link`.
 */

import { err, ok, type Result } from '../result.ts';
import { elfError, type ElfError } from './errors.ts';
import type { Elf64Section } from './sections.ts';
import {
  ELF64_RELA_SIZE,
  ELF64_SYM_SIZE,
  ET_REL,
  R_X86_64_16,
  R_X86_64_32,
  R_X86_64_32S,
  R_X86_64_64,
  R_X86_64_8,
  R_X86_64_GOT32,
  R_X86_64_GOTPCREL,
  R_X86_64_GOTPCRELX,
  R_X86_64_NONE,
  R_X86_64_PC16,
  R_X86_64_PC32,
  R_X86_64_PC64,
  R_X86_64_PC8,
  R_X86_64_PLT32,
  R_X86_64_REX_GOTPCRELX,
  SHT_DYNSYM,
  SHT_NOBITS,
  SHT_SYMTAB,
} from './types.ts';

/** One `Elf64_Rela` entry. */
export interface Elf64Rela {
  /** `r_offset`: offset inside the target section (`.ko`) or a virtual address (EXEC). */
  readonly offset: bigint;
  /** `ELF64_R_TYPE(r_info)` (R_X86_64_*). */
  readonly type: number;
  /** `ELF64_R_SYM(r_info)`: index into the linked symbol table. */
  readonly symIndex: number;
  /** `r_addend`, signed. */
  readonly addend: bigint;
}

/** One SHT_RELA section and its decoded entries. */
export interface Elf64RelaSection {
  /** Index of the SHT_RELA section itself. */
  readonly index: number;
  /** Its name, e.g. `.rela.text`. */
  readonly name: string;
  /** `sh_info`: index of the section the entries patch (0 for dynamic relocations). */
  readonly appliesTo: number;
  /** `sh_link`: index of the symbol table the entries refer to. */
  readonly symtab: number;
  /** The entries, in file order (made from {@link raw} on first read). */
  readonly entries: readonly Elf64Rela[];
  /**
   * The `Elf64_Rela` table itself (24 bytes per entry, little-endian), every entry checked:
   * a module loader can walk it without an object per relocation (kvm.ko has tens of
   * thousands).
   */
  readonly raw: DataView;
  /** Number of entries. */
  readonly count: number;
}

/** A parsed RELA section; `entries` are decoded from the checked table when first read. */
class RelaSection implements Elf64RelaSection {
  #entries: Elf64Rela[] | undefined;
  constructor(
    readonly index: number,
    readonly name: string,
    readonly appliesTo: number,
    readonly symtab: number,
    readonly raw: DataView,
    readonly count: number,
  ) {}
  get entries(): readonly Elf64Rela[] {
    if (!this.#entries) {
      const dv = this.raw;
      const out: Elf64Rela[] = new Array(this.count);
      for (let i = 0; i < this.count; i++) {
        const at = i * ELF64_RELA_SIZE;
        out[i] = {
          offset: dv.getBigUint64(at, true),
          type: dv.getUint32(at + 8, true),
          symIndex: dv.getUint32(at + 12, true),
          addend: dv.getBigInt64(at + 16, true),
        };
      }
      this.#entries = out;
    }
    return this.#entries;
  }
  /** Plain data for structural comparison and JSON (the getter is not an own property). */
  toJSON(): object {
    return { index: this.index, name: this.name, appliesTo: this.appliesTo, symtab: this.symtab, entries: this.entries };
  }
}

/**
 * How many bytes an x86-64 relocation of `type` writes, or `undefined` for a type this
 * reader does not know (x86-64 psABI, table "Relocation Types").
 */
export function relocationWidth(type: number): number | undefined {
  switch (type) {
    case R_X86_64_NONE:
      return 0;
    case R_X86_64_64:
    case R_X86_64_PC64:
      return 8;
    case R_X86_64_PC32:
    case R_X86_64_PLT32:
    case R_X86_64_32:
    case R_X86_64_32S:
    case R_X86_64_GOT32:
    case R_X86_64_GOTPCREL:
    case R_X86_64_GOTPCRELX:
    case R_X86_64_REX_GOTPCRELX:
      return 4;
    case R_X86_64_16:
    case R_X86_64_PC16:
      return 2;
    case R_X86_64_8:
    case R_X86_64_PC8:
      return 1;
    default:
      return undefined;
  }
}

/**
 * Decodes one SHT_RELA section. For relocatable files (`fileType` ET_REL) each entry's
 * patched bytes must lie inside the target section.
 */
export function parseRelaSection(
  bytes: Uint8Array,
  sections: readonly Elf64Section[],
  rela: Elf64Section,
  fileType: number,
): Result<Elf64RelaSection, ElfError> {
  const where = `relocation section ${rela.index} (${rela.name})`;
  if (rela.entsize !== ELF64_RELA_SIZE) {
    return err(elfError('rela-entsize', `rela entsize wrong: ${where} has sh_entsize ${rela.entsize}, expected ${ELF64_RELA_SIZE}`));
  }
  if (rela.size % ELF64_RELA_SIZE !== 0) {
    return err(elfError('rela-size', `${where} size ${rela.size} is not a multiple of ${ELF64_RELA_SIZE}`));
  }
  const symSec = sections[rela.link];
  if (symSec === undefined || (symSec.type !== SHT_SYMTAB && symSec.type !== SHT_DYNSYM)) {
    return err(elfError('bad-section-link', `${where} has sh_link ${rela.link}, which is not a symbol table`));
  }
  const symCount = Math.floor(symSec.size / ELF64_SYM_SIZE);
  const target = rela.info !== 0 ? sections[rela.info] : undefined;
  if (rela.info !== 0 && (target === undefined || rela.info === rela.index)) {
    return err(elfError('rela-bad-target', `${where} applies to section ${rela.info}, which does not exist or is itself`));
  }
  // TRUST: in a .ko, r_offset is relative to the target section, so it can be checked here;
  // in EXEC/DYN images it is a virtual address, checked by whoever maps it.
  const checked = fileType === ET_REL && target !== undefined && target.type !== SHT_NOBITS ? target : undefined;
  const targetSize = BigInt(checked?.size ?? 0);

  const dv = new DataView(bytes.buffer, bytes.byteOffset + rela.offset, rela.size);
  const count = rela.size / ELF64_RELA_SIZE;
  // Checked here without an object per entry; `entries` decodes the same table when read.
  const size = Number(targetSize);
  for (let i = 0; i < count; i++) {
    const at = i * ELF64_RELA_SIZE;
    const symIndex = dv.getUint32(at + 12, true);
    if (symIndex >= symCount) {
      return err(elfError('rela-bad-symbol', `relocation ${i} in ${where} references symbol ${symIndex}, but the symbol table has ${symCount}`));
    }
    if (checked !== undefined) {
      const type = dv.getUint32(at + 8, true);
      const offHi = dv.getUint32(at + 4, true);
      const width = relocationWidth(type) ?? 1;
      // offHi !== 0: at least 2^32, past any section.
      if (offHi !== 0 || dv.getUint32(at, true) + width > size) {
        const offset = dv.getBigUint64(at, true);
        return err(
          elfError(
            'rela-offset-out-of-bounds',
            `relocation ${i} in ${where} at offset ${offset} (type ${type}) is outside target section ${checked.index} (${checked.name}, ${targetSize} bytes)`,
          ),
        );
      }
    }
  }
  return ok(new RelaSection(rela.index, rela.name, rela.info, rela.link, dv, count));
}
