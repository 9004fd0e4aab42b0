/**
 * A module's exports: `__ksymtab` and `__ksymtab_gpl`, arrays of `struct kernel_symbol`
 * which on x86-64 (CONFIG_HAVE_ARCH_PREL32_RELOCATIONS) is `{ int value_offset; int
 * name_offset; int namespace_offset; }`, 12 bytes, each offset relative to its own field
 * (include/linux/export.h, `offset_to_ptr()`); the names live in `__ksymtab_strings`. A zero
 * `namespace_offset` means no namespace. Read after relocation.
 */

import { hex } from '../addr.ts';
import { readCString } from '../elf/strtab.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';
import { viewOf, type PlacedBuffer } from './placed-memory.ts';

/** `sizeof(struct kernel_symbol)` with PREL32 relocations. */
export const KERNEL_SYMBOL_SIZE = 12;
const MASK64 = (1n << 64n) - 1n;

/** One exported symbol. */
export interface ModuleExport {
  readonly name: string;
  readonly address: bigint;
  /** From `__ksymtab_gpl` (EXPORT_SYMBOL_GPL). */
  readonly gpl: boolean;
  /** `EXPORT_SYMBOL_NS` namespace, if any. */
  readonly namespace: string | undefined;
}

/** Reads the exports of the relocated ksymtab sections; names must be in `__ksymtab_strings`. */
export function readKsymtab(
  tables: ReadonlyArray<{ buffer: PlacedBuffer; gpl: boolean }>,
  strings: PlacedBuffer | undefined,
  moduleName: string,
): Result<ModuleExport[], ModuleError> {
  const out: ModuleExport[] = [];
  const seen = new Set<string>();
  for (const { buffer, gpl } of tables) {
    const fail = (message: string): { ok: false; error: ModuleError } => err(moduleError('ksymtab', `${moduleName}: ${message}`, { section: buffer.name }));
    if (buffer.bytes.length % KERNEL_SYMBOL_SIZE !== 0)
      return fail(`${buffer.name} is ${buffer.bytes.length} bytes, not a whole number of ${KERNEL_SYMBOL_SIZE}-byte entries`);
    if (buffer.bytes.length > 0 && !strings) return fail(`${buffer.name} has entries but the module has no __ksymtab_strings`);
    const dv = viewOf(buffer.bytes);
    const str = (fieldAddr: bigint, rel: number, i: number, what: string): string | { error: string } => {
      const a = (fieldAddr + BigInt(rel)) & MASK64;
      const off = a - strings!.addr;
      const s = off >= 0n && off < BigInt(strings!.bytes.length) ? readCString(strings!.bytes, Number(off)) : undefined;
      return s === undefined ? { error: `${buffer.name} entry ${i}: ${what} at ${hex(a)} is not a string in __ksymtab_strings` } : s;
    };
    for (let i = 0; i < buffer.bytes.length / KERNEL_SYMBOL_SIZE; i++) {
      const at = i * KERNEL_SYMBOL_SIZE;
      const entry = buffer.addr + BigInt(at);
      const address = (entry + BigInt(dv.getInt32(at, true))) & MASK64;
      const name = str(entry + 4n, dv.getInt32(at + 4, true), i, 'name');
      if (typeof name !== 'string') return fail(name.error);
      if (name === '') return fail(`${buffer.name} entry ${i} has an empty name`);
      const nsRel = dv.getInt32(at + 8, true);
      let namespace: string | undefined;
      if (nsRel !== 0) {
        const ns = str(entry + 8n, nsRel, i, 'namespace');
        if (typeof ns !== 'string') return fail(ns.error);
        namespace = ns;
      }
      if (seen.has(name)) return fail(`symbol ${name} is exported twice`);
      seen.add(name);
      out.push({ name, address, gpl, namespace });
    }
  }
  return ok(out);
}
