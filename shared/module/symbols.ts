/**
 * Symbol values, as Linux 6.1's `simplify_symbols()` (kernel/module/main.c) computes them
 * once the sections are placed:
 *
 * - a symbol of a placed section: the section's address + `st_value`;
 * - a symbol of the per-CPU section: the module's per-CPU pointer + `st_value`;
 * - SHN_ABS: `st_value` as is;
 * - SHN_UNDEF: the address the resolver gives (vmlinux exports, then the exports of loaded
 *   modules); an unresolved weak symbol is 0, any other unresolved symbol is an error
 *   ("Unknown symbol");
 * - SHN_COMMON: an error (the kernel says "Please compile with -fno-common").
 *
 * Symbols of sections the loader does not place (`.modinfo`, non-allocated sections) have
 * no run-time address; a relocation that uses one is an error naming it.
 */

import { hex } from '../addr.ts';
import type { Elf64 } from '../elf/elf64.ts';
import { SHN_ABS, SHN_COMMON, SHN_LORESERVE, SHN_UNDEF, STB_WEAK } from '../elf/types.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';

/** Gives the address of an exported symbol, or undefined when nothing exports it. */
export type SymbolResolver = (name: string) => bigint | undefined;

const MASK64 = (1n << 64n) - 1n;

/** Symbol values by symbol index. */
export interface SymbolValues {
  /** Value of symbol `index`, or undefined when it has none (its section is not placed). */
  value(index: number): bigint | undefined;
  /** Why symbol `index` has no value. */
  whyNoValue(index: number): string;
  /** The undefined symbols and the addresses they resolved to (weak ones unresolved: 0). */
  readonly imports: ReadonlyMap<string, bigint>;
}

/**
 * Computes every symbol's value. `sectionAddr(shndx)` is the placed address of a section (the
 * per-CPU pointer for the per-CPU section), or undefined when the section is not placed.
 */
export function simplifySymbols(
  elf: Elf64,
  sectionAddr: (shndx: number) => bigint | undefined,
  resolve: SymbolResolver,
  moduleName: string,
): Result<SymbolValues, ModuleError> {
  const values: Array<bigint | undefined> = new Array(elf.symbols.length);
  const imports = new Map<string, bigint>();
  for (const sym of elf.symbols) {
    if (sym.index === 0) continue;
    const name = sym.name;
    switch (sym.shndx) {
      case SHN_COMMON:
        return err(
          moduleError('symbol', `${moduleName}: symbol ${name} is a common symbol (SHN_COMMON); modules must be compiled with -fno-common`, { symbol: name }),
        );
      case SHN_ABS:
        values[sym.index] = sym.value;
        break;
      case SHN_UNDEF: {
        if (name === '') return err(moduleError('symbol', `${moduleName}: undefined symbol ${sym.index} has no name`));
        let v = resolve(name);
        if (v === undefined) {
          if (sym.bind !== STB_WEAK)
            return err(
              moduleError('unresolved-symbol', `${moduleName}: unknown symbol ${name} (no export of the kernel or a loaded module provides it)`, {
                symbol: name,
              }),
            );
          v = 0n;
        }
        values[sym.index] = v & MASK64;
        imports.set(name, v & MASK64);
        break;
      }
      default: {
        if (sym.shndx >= SHN_LORESERVE) {
          values[sym.index] = undefined; // SHN_LIVEPATCH and other reserved indices: no value here
          break;
        }
        const base = sectionAddr(sym.shndx);
        values[sym.index] = base === undefined ? undefined : (base + sym.value) & MASK64;
      }
    }
  }
  return ok({
    value: (index) => values[index],
    whyNoValue(index) {
      const sym = elf.symbols[index];
      if (!sym) return `symbol index ${index} does not exist`;
      const label = sym.name !== '' ? `symbol ${sym.name}` : `section symbol ${index}`;
      if (sym.shndx >= SHN_LORESERVE) return `${label} has reserved section index ${hex(sym.shndx)}`;
      return `${label} is in section ${elf.sections[sym.shndx]?.name ?? sym.shndx}, which the loader does not place`;
    },
    imports,
  });
}
