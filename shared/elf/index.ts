/** The ELF64 reader: re-exports only. */
export * from './types.ts';
export * from './errors.ts';
export * from './header.ts';
export * from './sections.ts';
export * from './segments.ts';
export * from './symbols.ts';
export * from './relocations.ts';
export * from './strtab.ts';
export * from './elf64.ts';
