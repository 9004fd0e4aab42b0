/**
 * ELF64 numeric constants used by the reader and its callers.
 *
 * Values are from the System V gABI and the x86-64 psABI, as spelled in Linux's
 * `include/uapi/linux/elf.h` and glibc's `elf.h`. Only what an x86-64 kernel or module
 * loader needs is listed; unknown values are passed through as plain numbers.
 */

/** Size of `Elf64_Ehdr` (gABI). */
export const ELF64_EHDR_SIZE = 64;
/** Size of `Elf64_Shdr` (gABI). */
export const ELF64_SHDR_SIZE = 64;
/** Size of `Elf64_Phdr` (gABI). */
export const ELF64_PHDR_SIZE = 56;
/** Size of `Elf64_Sym` (gABI). */
export const ELF64_SYM_SIZE = 24;
/** Size of `Elf64_Rela` (gABI). */
export const ELF64_RELA_SIZE = 24;

/** `e_ident[EI_CLASS]` value for 64-bit objects. */
export const ELFCLASS64 = 2;
/** `e_ident[EI_DATA]` value for two's-complement little-endian objects. */
export const ELFDATA2LSB = 1;
/** `e_ident[EI_VERSION]` / `e_version` current value. */
export const EV_CURRENT = 1;

/** `e_type`: relocatable file (a kernel module `.ko`). */
export const ET_REL = 1;
/** `e_type`: executable (vmlinux). */
export const ET_EXEC = 2;
/** `e_type`: shared object / PIE. */
export const ET_DYN = 3;

/** `e_machine` for AMD x86-64. */
export const EM_X86_64 = 62;

/** Special section index: undefined symbol. */
export const SHN_UNDEF = 0;
/** Special section index: first reserved index. */
export const SHN_LORESERVE = 0xff00;
/** Special section index: absolute symbol value. */
export const SHN_ABS = 0xfff1;
/** Special section index: common symbol. */
export const SHN_COMMON = 0xfff2;
/** Special section index: the real index is elsewhere (extended numbering). */
export const SHN_XINDEX = 0xffff;

/** Section type: inactive header. */
export const SHT_NULL = 0;
/** Section type: program-defined bytes. */
export const SHT_PROGBITS = 1;
/** Section type: full symbol table. */
export const SHT_SYMTAB = 2;
/** Section type: string table. */
export const SHT_STRTAB = 3;
/** Section type: relocations with explicit addends. */
export const SHT_RELA = 4;
/** Section type: symbol hash table. */
export const SHT_HASH = 5;
/** Section type: dynamic linking information. */
export const SHT_DYNAMIC = 6;
/** Section type: notes. */
export const SHT_NOTE = 7;
/** Section type: occupies no file space (`.bss`). */
export const SHT_NOBITS = 8;
/** Section type: relocations without addends. */
export const SHT_REL = 9;
/** Section type: dynamic symbol table. */
export const SHT_DYNSYM = 11;
/** Section type: array of constructors. */
export const SHT_INIT_ARRAY = 14;
/** Section type: array of destructors. */
export const SHT_FINI_ARRAY = 15;
/** Section type: section group. */
export const SHT_GROUP = 17;
/** Section type: extended section indices for a symbol table. */
export const SHT_SYMTAB_SHNDX = 18;

/** Section flag: writable at run time. */
export const SHF_WRITE = 0x1;
/** Section flag: occupies memory at run time. */
export const SHF_ALLOC = 0x2;
/** Section flag: executable. */
export const SHF_EXECINSTR = 0x4;
/** Section flag: may be merged. */
export const SHF_MERGE = 0x10;
/** Section flag: NUL-terminated strings. */
export const SHF_STRINGS = 0x20;
/** Section flag: `sh_info` holds a section index. */
export const SHF_INFO_LINK = 0x40;
/** Section flag: member of a section group. */
export const SHF_GROUP = 0x200;

/** Segment type: loadable. */
export const PT_LOAD = 1;
/** Segment type: dynamic linking information. */
export const PT_DYNAMIC = 2;
/** Segment type: notes. */
export const PT_NOTE = 4;
/** Segment type: thread-local storage template. */
export const PT_TLS = 7;
/** Segment type: GNU stack permissions. */
export const PT_GNU_STACK = 0x6474e551;

/** Segment flag: executable. */
export const PF_X = 0x1;
/** Segment flag: writable. */
export const PF_W = 0x2;
/** Segment flag: readable. */
export const PF_R = 0x4;

/** Symbol type: unspecified. */
export const STT_NOTYPE = 0;
/** Symbol type: data object. */
export const STT_OBJECT = 1;
/** Symbol type: function. */
export const STT_FUNC = 2;
/** Symbol type: a section (name is empty; `shndx` names it). */
export const STT_SECTION = 3;
/** Symbol type: source file name. */
export const STT_FILE = 4;
/** Symbol type: common block. */
export const STT_COMMON = 5;
/** Symbol type: thread-local. */
export const STT_TLS = 6;

/** Symbol binding: local. */
export const STB_LOCAL = 0;
/** Symbol binding: global. */
export const STB_GLOBAL = 1;
/** Symbol binding: weak. */
export const STB_WEAK = 2;

/** Symbol visibility: default. */
export const STV_DEFAULT = 0;
/** Symbol visibility: internal. */
export const STV_INTERNAL = 1;
/** Symbol visibility: hidden. */
export const STV_HIDDEN = 2;
/** Symbol visibility: protected. */
export const STV_PROTECTED = 3;

/** x86-64 relocation: none. */
export const R_X86_64_NONE = 0;
/** x86-64 relocation: S + A, 64-bit. */
export const R_X86_64_64 = 1;
/** x86-64 relocation: S + A - P, 32-bit signed. */
export const R_X86_64_PC32 = 2;
/** x86-64 relocation: G + A, 32-bit GOT offset. */
export const R_X86_64_GOT32 = 3;
/** x86-64 relocation: L + A - P, 32-bit (PLT entry; equals PC32 for the kernel). */
export const R_X86_64_PLT32 = 4;
/** x86-64 relocation: G + GOT + A - P, 32-bit. */
export const R_X86_64_GOTPCREL = 9;
/** x86-64 relocation: S + A, 32-bit zero-extended. */
export const R_X86_64_32 = 10;
/** x86-64 relocation: S + A, 32-bit sign-extended. */
export const R_X86_64_32S = 11;
/** x86-64 relocation: S + A, 16-bit. */
export const R_X86_64_16 = 12;
/** x86-64 relocation: S + A - P, 16-bit. */
export const R_X86_64_PC16 = 13;
/** x86-64 relocation: S + A, 8-bit. */
export const R_X86_64_8 = 14;
/** x86-64 relocation: S + A - P, 8-bit. */
export const R_X86_64_PC8 = 15;
/** x86-64 relocation: S + A - P, 64-bit. */
export const R_X86_64_PC64 = 24;
/** x86-64 relocation: relaxable GOTPCREL (`mov foo@GOTPCREL(%rip)`). */
export const R_X86_64_GOTPCRELX = 41;
/** x86-64 relocation: relaxable GOTPCREL with REX prefix. */
export const R_X86_64_REX_GOTPCRELX = 42;
