/**
 * The ELF64 file header (`Elf64_Ehdr`), validated for little-endian x86-64.
 */

import { err, ok, type Result } from '../result.ts';
import { elfError, type ElfError } from './errors.ts';
import { ELF64_EHDR_SIZE, ELF64_PHDR_SIZE, ELF64_SHDR_SIZE, ELFCLASS64, ELFDATA2LSB, EM_X86_64, EV_CURRENT } from './types.ts';

/** The fields of `Elf64_Ehdr` (offsets kept as bigint, as the file stores them). */
export interface Elf64Header {
  /** `e_ident[EI_OSABI]`. */
  readonly osabi: number;
  /** `e_type`: ET_REL for modules, ET_EXEC for vmlinux. */
  readonly type: number;
  /** `e_machine`: always EM_X86_64 after validation. */
  readonly machine: number;
  /** `e_version`. */
  readonly version: number;
  /** `e_entry`: entry point virtual address. */
  readonly entry: bigint;
  /** `e_phoff`: file offset of the program header table. */
  readonly phoff: bigint;
  /** `e_shoff`: file offset of the section header table. */
  readonly shoff: bigint;
  /** `e_flags`. */
  readonly flags: number;
  /** `e_ehsize`. */
  readonly ehsize: number;
  /** `e_phentsize`. */
  readonly phentsize: number;
  /** `e_phnum` as stored (0xffff means the count is in section 0's `sh_info`). */
  readonly phnum: number;
  /** `e_shentsize`. */
  readonly shentsize: number;
  /** `e_shnum` as stored (0 with a non-zero `e_shoff` means the count is in section 0's `sh_size`). */
  readonly shnum: number;
  /** `e_shstrndx` as stored (SHN_XINDEX means the index is in section 0's `sh_link`). */
  readonly shstrndx: number;
}

const MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const;
/** `EI_NIDENT`: the identification bytes checked before the rest of the header. */
const EI_NIDENT = 16;

/** Reads and validates the file header at the start of `bytes`. */
export function parseElf64Header(bytes: Uint8Array): Result<Elf64Header, ElfError> {
  const n = Math.min(bytes.length, MAGIC.length);
  for (let i = 0; i < n; i++) {
    if (bytes[i] !== MAGIC[i]) return err(elfError('bad-magic', 'bad magic: not an ELF file (expected 7f 45 4c 46)'));
  }
  if (bytes.length < EI_NIDENT) {
    return err(elfError('truncated-header', `truncated header: ${bytes.length} bytes, an ELF64 header needs ${ELF64_EHDR_SIZE}`));
  }
  if (bytes[4] !== ELFCLASS64) return err(elfError('not-elfclass64', `not ELFCLASS64 (EI_CLASS is ${bytes[4]})`));
  if (bytes[5] !== ELFDATA2LSB) return err(elfError('not-little-endian', `not little-endian (EI_DATA is ${bytes[5]})`));
  if (bytes[6] !== EV_CURRENT) return err(elfError('bad-version', `unsupported ELF version ${bytes[6]} in e_ident`));
  if (bytes.length < ELF64_EHDR_SIZE) {
    return err(elfError('truncated-header', `truncated header: ${bytes.length} bytes, an ELF64 header needs ${ELF64_EHDR_SIZE}`));
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h: Elf64Header = {
    osabi: bytes[7]!,
    type: dv.getUint16(16, true),
    machine: dv.getUint16(18, true),
    version: dv.getUint32(20, true),
    entry: dv.getBigUint64(24, true),
    phoff: dv.getBigUint64(32, true),
    shoff: dv.getBigUint64(40, true),
    flags: dv.getUint32(48, true),
    ehsize: dv.getUint16(52, true),
    phentsize: dv.getUint16(54, true),
    phnum: dv.getUint16(56, true),
    shentsize: dv.getUint16(58, true),
    shnum: dv.getUint16(60, true),
    shstrndx: dv.getUint16(62, true),
  };
  if (h.machine !== EM_X86_64) return err(elfError('wrong-machine', `wrong machine ${h.machine}: expected EM_X86_64 (62)`));
  if (h.version !== EV_CURRENT) return err(elfError('bad-version', `unsupported e_version ${h.version}`));
  if (h.ehsize < ELF64_EHDR_SIZE) return err(elfError('bad-header-size', `e_ehsize ${h.ehsize} is smaller than ${ELF64_EHDR_SIZE}`));
  if (h.shoff !== 0n && h.shentsize !== ELF64_SHDR_SIZE) {
    return err(elfError('bad-header-size', `e_shentsize ${h.shentsize} is not ${ELF64_SHDR_SIZE}`));
  }
  if (h.phnum !== 0 && h.phentsize !== ELF64_PHDR_SIZE) {
    return err(elfError('bad-header-size', `e_phentsize ${h.phentsize} is not ${ELF64_PHDR_SIZE}`));
  }
  return ok(h);
}
