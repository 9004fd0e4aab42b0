/**
 * ELF64 symbol tables (`Elf64_Sym[]` in SHT_SYMTAB), with names and extended section
 * indices (SHT_SYMTAB_SHNDX) resolved.
 */

import { err, ok, type Result } from '../result.ts';
import { elfError, type ElfError } from './errors.ts';
import type { Elf64Section } from './sections.ts';
import { readCString } from './strtab.ts';
import { ELF64_SYM_SIZE, SHN_LORESERVE, SHN_UNDEF, SHN_XINDEX, SHT_STRTAB, SHT_SYMTAB_SHNDX } from './types.ts';

/** One symbol of a symbol table. */
export interface Elf64Symbol {
  /** Index in its symbol table (what relocations refer to). */
  readonly index: number;
  /** Name (`""` for section symbols and the null symbol). */
  readonly name: string;
  /** `st_value`: an address in EXEC images, a section offset in `.ko` files. */
  readonly value: bigint;
  /** `st_size`. */
  readonly size: number;
  /** `ELF64_ST_TYPE(st_info)` (STT_*). */
  readonly type: number;
  /** `ELF64_ST_BIND(st_info)` (STB_*). */
  readonly bind: number;
  /** `ELF64_ST_VISIBILITY(st_other)` (STV_*). */
  readonly visibility: number;
  /** Section index, with SHN_XINDEX resolved; SHN_UNDEF / SHN_ABS / SHN_COMMON kept as is. */
  readonly shndx: number;
}

/**
 * Reads the symbol table in `symtab`. Its `sh_link` must name a string table; entries must be
 * 24 bytes; section indices must name a real section or a reserved index.
 */
export function parseSymbolTable(bytes: Uint8Array, sections: readonly Elf64Section[], symtab: Elf64Section): Result<Elf64Symbol[], ElfError> {
  const where = `symbol table section ${symtab.index} (${symtab.name})`;
  if (symtab.entsize !== ELF64_SYM_SIZE) {
    return err(elfError('symtab-entsize', `symbol table entsize wrong: ${where} has sh_entsize ${symtab.entsize}, expected ${ELF64_SYM_SIZE}`));
  }
  if (symtab.size % ELF64_SYM_SIZE !== 0) {
    return err(elfError('symtab-size', `${where} size ${symtab.size} is not a multiple of ${ELF64_SYM_SIZE}`));
  }
  const strSec = sections[symtab.link];
  if (strSec === undefined || strSec.type !== SHT_STRTAB) {
    return err(elfError('bad-section-link', `${where} has sh_link ${symtab.link}, which is not a string table`));
  }
  // A Buffer view (no copy), so that readCString decodes names without a view per name.
  const names = bytes.subarray(strSec.offset, strSec.offset + strSec.size);
  const strtab = Buffer.from(names.buffer, names.byteOffset, names.byteLength);
  const count = symtab.size / ELF64_SYM_SIZE;

  let xindex: DataView | undefined;
  for (const s of sections) {
    if (s.type === SHT_SYMTAB_SHNDX && s.link === symtab.index) {
      if (s.size < count * 4) {
        return err(elfError('bad-symbol-shndx', `extended index section ${s.index} holds ${s.size / 4} entries for ${count} symbols`));
      }
      xindex = new DataView(bytes.buffer, bytes.byteOffset + s.offset, s.size);
    }
  }

  const dv = new DataView(bytes.buffer, bytes.byteOffset + symtab.offset, symtab.size);
  const out: Elf64Symbol[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * ELF64_SYM_SIZE;
    const nameOff = dv.getUint32(at, true);
    const info = dv.getUint8(at + 4);
    const other = dv.getUint8(at + 5);
    let shndx = dv.getUint16(at + 6, true);
    const value = dv.getBigUint64(at + 8, true);
    // st_size in halves (no bigint per symbol): at most 2^53 - 1 exactly when the high half is below 2^21.
    const sizeHi = dv.getUint32(at + 20, true);
    if (sizeHi >= 0x20_0000) {
      return err(elfError('symbol-size-too-large', `symbol ${i} in ${where} has size ${dv.getBigUint64(at + 16, true)}, beyond 2^53`));
    }
    const size = sizeHi * 0x1_0000_0000 + dv.getUint32(at + 16, true);
    const name = nameOff === 0 ? '' : readCString(strtab, nameOff);
    if (name === undefined) {
      return err(elfError('bad-symbol-name', `symbol ${i} in ${where} has name offset ${nameOff} outside its string table`));
    }
    if (shndx === SHN_XINDEX) {
      if (xindex === undefined) {
        return err(elfError('bad-symbol-shndx', `symbol ${i} (${name}) uses SHN_XINDEX but there is no SHT_SYMTAB_SHNDX section`));
      }
      shndx = xindex.getUint32(i * 4, true);
      if (shndx >= sections.length) {
        return err(elfError('bad-symbol-shndx', `symbol ${i} (${name}) has extended section index ${shndx} beyond the ${sections.length} sections`));
      }
    } else if (shndx !== SHN_UNDEF && shndx < SHN_LORESERVE && shndx >= sections.length) {
      return err(elfError('bad-symbol-shndx', `symbol ${i} (${name}) has section index ${shndx} beyond the ${sections.length} sections`));
    }
    out.push({ index: i, name, value, size, type: info & 0xf, bind: info >> 4, visibility: other & 0x3, shndx });
  }
  return ok(out);
}
