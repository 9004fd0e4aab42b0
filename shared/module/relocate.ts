/**
 * Applying a module's relocations, as Linux 6.1 does: `apply_relocations()` walks the
 * SHT_RELA sections in index order and applies those whose target section is placed
 * (allocated, after the loader dropped SHF_ALLOC from `.modinfo`, `__versions` and the
 * per-CPU section); `apply_relocate_add()` (arch/x86/kernel/module.c) computes
 * `val = S + A` and writes:
 *
 * | type            | value      | size | refused when                                   |
 * |-----------------|------------|------|------------------------------------------------|
 * | R_X86_64_NONE   | -          | 0    | -                                              |
 * | R_X86_64_64     | S + A      | 8    | -                                              |
 * | R_X86_64_32     | S + A      | 4    | the value does not fit in u32                  |
 * | R_X86_64_32S    | S + A      | 4    | the value does not fit in s32                  |
 * | R_X86_64_PC32   | S + A - P  | 4    | the value does not fit in s32 (*)              |
 * | R_X86_64_PLT32  | S + A - P  | 4    | as PC32                                        |
 * | R_X86_64_PC64   | S + A - P  | 8    | -                                              |
 *
 * and refuses any other type ("Unknown rela relocation") and any location whose bytes are
 * not all zero ("Invalid relocation target, existing value is nonzero"): a relocatable
 * object holds zeros where relocations go, so a nonzero value means a relocation applied
 * twice or a crafted file.
 *
 * (*) 6.1 does not check PC32/PLT32 overflow (the check is under `#if 0`); a value that does
 * not fit means a section placed more than 2 GiB from its target, which would run wrong code,
 * so we refuse it.
 */

import { hex } from '../addr.ts';
import type { Elf64 } from '../elf/elf64.ts';
import type { Elf64Rela } from '../elf/relocations.ts';
import { R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_NONE, R_X86_64_PC32, R_X86_64_PC64, R_X86_64_PLT32 } from '../elf/types.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';
import { viewOf, type PlacedBuffer } from './placed-memory.ts';
import type { SymbolValues } from './symbols.ts';

const MASK64 = (1n << 64n) - 1n;
const TWO31 = 1n << 31n;
const TWO32 = 1n << 32n;
const TWO63 = 1n << 63n;
const TWO64 = 1n << 64n;

/** Names of the relocation types the loader applies, for messages. */
export const RELOCATION_NAMES: Readonly<Record<number, string>> = Object.freeze({
  [R_X86_64_NONE]: 'R_X86_64_NONE',
  [R_X86_64_64]: 'R_X86_64_64',
  [R_X86_64_PC32]: 'R_X86_64_PC32',
  [R_X86_64_PLT32]: 'R_X86_64_PLT32',
  [R_X86_64_32]: 'R_X86_64_32',
  [R_X86_64_32S]: 'R_X86_64_32S',
  [R_X86_64_PC64]: 'R_X86_64_PC64',
});

/** Name of relocation type `t`. */
export function relocationName(t: number): string {
  return RELOCATION_NAMES[t] ?? `type ${t}`;
}

/** How many relocations were applied, per type name. */
export type RelocationCounts = Record<string, number>;

/**
 * Applies every relocation section whose target is in `buffers` (the placed sections, by
 * index), in section order. Writes into the buffers; returns per-type counts.
 */
export function applyRelocations(elf: Elf64, buffers: ReadonlyMap<number, PlacedBuffer>, symbols: SymbolValues, moduleName: string): Result<RelocationCounts, ModuleError> {
  const counts: RelocationCounts = {};
  for (const rela of elf.relocations) {
    const target = buffers.get(rela.appliesTo);
    if (!target) continue; // not placed: .modinfo, __versions, per-CPU, non-allocated
    if (rela.symtab !== elf.symtabIndex) {
      return err(moduleError('relocation', `${rela.name} refers to symbol table ${rela.symtab}, not the module's .symtab (${String(elf.symtabIndex)})`, { section: rela.name }));
    }
    const dv = viewOf(target.bytes);
    const size = target.bytes.length;
    // No closure per relocation: a module has tens of thousands (kvm.ko), and under tsx every
    // closure also gets its name set, which cost more than the relocation itself.
    const fail = (i: number, r: Elf64Rela, message: string, symbol?: string): { ok: false; error: ModuleError } =>
      err(
        moduleError(
          'relocation',
          `${moduleName}: relocation ${i} of ${rela.name} (${relocationName(r.type)}) at ${target.name}+${hex(r.offset)}: ${message}`,
          symbol === undefined ? { section: target.name } : { section: target.name, symbol },
        ),
      );
    const symName = (r: Elf64Rela): string => elf.symbols[r.symIndex]?.name || `section symbol ${r.symIndex}`;
    for (let i = 0; i < rela.entries.length; i++) {
      const r = rela.entries[i]!;
      if (r.type === R_X86_64_NONE) {
        counts.R_X86_64_NONE = (counts.R_X86_64_NONE ?? 0) + 1;
        continue;
      }
      let width: number;
      switch (r.type) {
        case R_X86_64_64:
        case R_X86_64_PC64:
          width = 8;
          break;
        case R_X86_64_32:
        case R_X86_64_32S:
        case R_X86_64_PC32:
        case R_X86_64_PLT32:
          width = 4;
          break;
        default:
          return fail(i, r, `unknown relocation type ${r.type}`);
      }
      const off = Number(r.offset);
      if (off + width > size) return fail(i, r, `the ${width} bytes written lie outside the section (${size} bytes)`);
      const s = symbols.value(r.symIndex);
      if (s === undefined) return fail(i, r, symbols.whyNoValue(r.symIndex), elf.symbols[r.symIndex]?.name || undefined);
      const loc = (target.addr + r.offset) & MASK64;
      let val = (s + r.addend) & MASK64;
      if (r.type === R_X86_64_PC32 || r.type === R_X86_64_PLT32 || r.type === R_X86_64_PC64) val = (val - loc) & MASK64;
      if (r.type === R_X86_64_32 && val >= TWO32) return fail(i, r, `overflow: value ${hex(val)} (${symName(r)}) does not fit in 32 bits unsigned`);
      if (r.type !== R_X86_64_32 && width === 4) {
        const signed = val >= TWO63 ? val - TWO64 : val;
        if (signed < -TWO31 || signed >= TWO31) return fail(i, r, `overflow: value ${hex(val)} (${symName(r)}) does not fit in 32 bits signed`);
      }
      for (let b = 0; b < width; b++) {
        if (target.bytes[off + b] !== 0) return fail(i, r, 'Invalid relocation target, existing value is nonzero');
      }
      if (width === 8) dv.setBigUint64(off, val, true);
      else dv.setUint32(off, Number(val & 0xffffffffn), true);
      const name = relocationName(r.type);
      counts[name] = (counts[name] ?? 0) + 1;
    }
  }
  return ok(counts);
}
