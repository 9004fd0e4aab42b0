/**
 * The ELF64 section header table (`Elf64_Shdr[]`), with names resolved through
 * `.shstrtab` and every section's file range checked against the image.
 */

import { err, ok, type Result } from '../result.ts';
import { rangeInside, safeNumber } from './bounds.ts';
import { elfError, type ElfError } from './errors.ts';
import type { Elf64Header } from './header.ts';
import { readCString } from './strtab.ts';
import { ELF64_SHDR_SIZE, SHN_XINDEX, SHT_NOBITS, SHT_NULL, SHT_STRTAB } from './types.ts';

/** One section header, with its name resolved. */
export interface Elf64Section {
  /** Index in the section header table. */
  readonly index: number;
  /** Name from the section-name string table (`""` for section 0). */
  readonly name: string;
  /** `sh_type` (SHT_*). */
  readonly type: number;
  /** `sh_flags` (SHF_*). */
  readonly flags: number;
  /** `sh_addr`: run-time virtual address (0 for non-allocated sections and in `.ko` files). */
  readonly addr: bigint;
  /** `sh_offset`: file offset of the data. */
  readonly offset: number;
  /** `sh_size`: bytes in memory (for SHT_NOBITS, nothing in the file). */
  readonly size: number;
  /** `sh_link`: an associated section index (meaning depends on `type`). */
  readonly link: number;
  /** `sh_info`: extra information (for SHT_RELA, the section the relocations apply to). */
  readonly info: number;
  /** `sh_addralign`. */
  readonly addralign: number;
  /** `sh_entsize`: size of one entry for table sections, else 0. */
  readonly entsize: number;
}

/** The section table plus the resolved section-name string table index. */
export interface SectionTable {
  readonly sections: readonly Elf64Section[];
  readonly shstrndx: number;
  /** `e_phnum` after extended numbering (PN_XNUM) is resolved. */
  readonly phnum: number;
}

const PN_XNUM = 0xffff;

interface RawSection {
  name: number;
  type: number;
  flags: bigint;
  addr: bigint;
  offset: bigint;
  size: bigint;
  link: number;
  info: number;
  addralign: bigint;
  entsize: bigint;
}

function readRaw(dv: DataView, at: number): RawSection {
  return {
    name: dv.getUint32(at, true),
    type: dv.getUint32(at + 4, true),
    flags: dv.getBigUint64(at + 8, true),
    addr: dv.getBigUint64(at + 16, true),
    offset: dv.getBigUint64(at + 24, true),
    size: dv.getBigUint64(at + 32, true),
    link: dv.getUint32(at + 40, true),
    info: dv.getUint32(at + 44, true),
    addralign: dv.getBigUint64(at + 48, true),
    entsize: dv.getBigUint64(at + 56, true),
  };
}

/**
 * Reads the section header table described by `h`, resolving extended numbering (count in
 * section 0's `sh_size`, string-table index in its `sh_link`, segment count in its `sh_info`).
 */
export function parseSections(bytes: Uint8Array, h: Elf64Header): Result<SectionTable, ElfError> {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let phnum = h.phnum;
  if (h.shoff === 0n) {
    // No section table at all (legal for executables); nothing to name.
    if (h.shnum !== 0) return err(elfError('section-table-out-of-bounds', `section header table out of bounds: e_shoff is 0 but e_shnum is ${h.shnum}`));
    if (phnum === PN_XNUM)
      return err(elfError('program-table-out-of-bounds', 'program header table out of bounds: e_phnum is PN_XNUM but there is no section 0'));
    return ok({ sections: [], shstrndx: 0, phnum });
  }
  const shoff = safeNumber(h.shoff);
  if (shoff === undefined || !rangeInside(shoff, ELF64_SHDR_SIZE, bytes.length)) {
    return err(elfError('section-table-out-of-bounds', `section header table out of bounds: e_shoff ${h.shoff} in a ${bytes.length}-byte file`));
  }
  const first = readRaw(dv, shoff);
  let count = h.shnum;
  if (count === 0) {
    const big = safeNumber(first.size);
    if (big === undefined) return err(elfError('section-table-out-of-bounds', `section header table out of bounds: extended section count ${first.size}`));
    count = big;
  }
  let shstrndx = h.shstrndx;
  if (shstrndx === SHN_XINDEX) shstrndx = first.link;
  if (phnum === PN_XNUM) phnum = first.info;
  // INVARIANT: the table fits in the file before we allocate anything sized by `count`.
  if (count > Math.floor((bytes.length - shoff) / ELF64_SHDR_SIZE)) {
    return err(
      elfError('section-table-out-of-bounds', `section header table out of bounds: ${count} headers at offset ${shoff} exceed the ${bytes.length}-byte file`),
    );
  }
  if (shstrndx === 0 || shstrndx >= count) {
    return err(elfError('bad-string-table-index', `bad string table index ${shstrndx} (section count ${count})`));
  }
  const raws: RawSection[] = [];
  for (let i = 0; i < count; i++) raws.push(readRaw(dv, shoff + i * ELF64_SHDR_SIZE));

  const numeric: { offset: number; size: number; flags: number; addralign: number; entsize: number }[] = [];
  for (let i = 0; i < count; i++) {
    const r = raws[i]!;
    const offset = safeNumber(r.offset);
    const size = safeNumber(r.size);
    const flags = safeNumber(r.flags);
    const addralign = safeNumber(r.addralign);
    const entsize = safeNumber(r.entsize);
    if (offset === undefined || size === undefined || flags === undefined || addralign === undefined || entsize === undefined) {
      return err(elfError('section-out-of-bounds', `section data out of bounds for section ${i}: a field exceeds 2^53`));
    }
    if (r.type !== SHT_NOBITS && r.type !== SHT_NULL && !rangeInside(offset, size, bytes.length)) {
      return err(elfError('section-out-of-bounds', `section data out of bounds for section ${i}: [${offset}, +${size}) in a ${bytes.length}-byte file`));
    }
    if (r.link >= count && i !== 0) {
      return err(elfError('bad-section-link', `section ${i} has sh_link ${r.link} beyond the ${count} sections`));
    }
    numeric.push({ offset, size, flags, addralign, entsize });
  }

  const strRaw = raws[shstrndx]!;
  const strNum = numeric[shstrndx]!;
  if (strRaw.type !== SHT_STRTAB) {
    return err(elfError('bad-string-table-index', `bad string table index ${shstrndx}: section type ${strRaw.type} is not SHT_STRTAB`));
  }
  const strtab = bytes.subarray(strNum.offset, strNum.offset + strNum.size);

  const sections: Elf64Section[] = [];
  for (let i = 0; i < count; i++) {
    const r = raws[i]!;
    const nm = numeric[i]!;
    const name = i === 0 && r.name === 0 ? '' : readCString(strtab, r.name);
    if (name === undefined) {
      return err(elfError('bad-section-name', `section ${i} name offset ${r.name} is outside the section-name string table`));
    }
    sections.push({
      index: i,
      name,
      type: r.type,
      flags: nm.flags,
      addr: r.addr,
      offset: nm.offset,
      size: nm.size,
      link: r.link,
      info: r.info,
      addralign: nm.addralign,
      entsize: nm.entsize,
    });
  }
  return ok({ sections, shstrndx, phnum });
}
