/**
 * The ELF64 program header table (`Elf64_Phdr[]`): the segments a loader maps. For vmlinux
 * the PT_LOAD entries give each section's physical load address (`p_paddr`).
 */

import { err, ok, type Result } from '../result.ts';
import { rangeInside, safeNumber } from './bounds.ts';
import { elfError, type ElfError } from './errors.ts';
import { ELF64_PHDR_SIZE, PT_LOAD } from './types.ts';

/** One program header. */
export interface Elf64ProgramHeader {
  /** Index in the program header table. */
  readonly index: number;
  /** `p_type` (PT_*). */
  readonly type: number;
  /** `p_flags` (PF_R / PF_W / PF_X). */
  readonly flags: number;
  /** `p_offset`: file offset of the segment's bytes. */
  readonly offset: number;
  /** `p_vaddr`: virtual address. */
  readonly vaddr: bigint;
  /** `p_paddr`: physical load address. */
  readonly paddr: bigint;
  /** `p_filesz`: bytes present in the file. */
  readonly filesz: number;
  /** `p_memsz`: bytes in memory (the tail past `filesz` is zero-filled). */
  readonly memsz: number;
  /** `p_align`. */
  readonly align: number;
}

/** Reads `phnum` program headers at `phoff`, checking the table and each segment's file range. */
export function parseProgramHeaders(bytes: Uint8Array, phoff: bigint, phnum: number): Result<Elf64ProgramHeader[], ElfError> {
  if (phnum === 0) return ok([]);
  const off = safeNumber(phoff);
  // INVARIANT: the table fits in the file before we read `phnum` entries.
  if (off === undefined || off > bytes.length || phnum > Math.floor((bytes.length - off) / ELF64_PHDR_SIZE)) {
    return err(
      elfError('program-table-out-of-bounds', `program header table out of bounds: ${phnum} headers at offset ${phoff} in a ${bytes.length}-byte file`),
    );
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Elf64ProgramHeader[] = [];
  for (let i = 0; i < phnum; i++) {
    const at = off + i * ELF64_PHDR_SIZE;
    const type = dv.getUint32(at, true);
    const flags = dv.getUint32(at + 4, true);
    const offset = safeNumber(dv.getBigUint64(at + 8, true));
    const vaddr = dv.getBigUint64(at + 16, true);
    const paddr = dv.getBigUint64(at + 24, true);
    const filesz = safeNumber(dv.getBigUint64(at + 32, true));
    const memsz = safeNumber(dv.getBigUint64(at + 40, true));
    const align = safeNumber(dv.getBigUint64(at + 48, true));
    if (offset === undefined || filesz === undefined || memsz === undefined || align === undefined) {
      return err(elfError('segment-out-of-bounds', `segment ${i}: a field exceeds 2^53`));
    }
    if (filesz > 0 && !rangeInside(offset, filesz, bytes.length)) {
      return err(elfError('segment-out-of-bounds', `segment ${i} file data [${offset}, +${filesz}) is out of bounds of the ${bytes.length}-byte file`));
    }
    if (type === PT_LOAD && filesz > memsz) {
      return err(elfError('segment-out-of-bounds', `segment ${i}: p_filesz ${filesz} exceeds p_memsz ${memsz}`));
    }
    out.push({ index: i, type, flags, offset, vaddr, paddr, filesz, memsz, align });
  }
  return ok(out);
}
