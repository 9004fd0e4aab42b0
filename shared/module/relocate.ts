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
import type { Elf64Rela, Elf64RelaSection } from '../elf/relocations.ts';
import { R_X86_64_32, R_X86_64_32S, R_X86_64_64, R_X86_64_NONE, R_X86_64_PC32, R_X86_64_PC64, R_X86_64_PLT32 } from '../elf/types.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';
import { viewOf, type PlacedBuffer } from './placed-memory.ts';
import type { SymbolValues } from './symbols.ts';
import { reportProgress } from '../progress.ts';

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
export function applyRelocations(
  elf: Elf64,
  buffers: ReadonlyMap<number, PlacedBuffer>,
  symbols: SymbolValues,
  moduleName: string,
): Result<RelocationCounts, ModuleError> {
  const counts: RelocationCounts = {};
  const values = splitSymbolValues(elf, symbols);
  for (const rela of elf.relocations) {
    // PROGRESS: one report per relocation section, for the verifier's watchdog (shared/progress.ts).
    reportProgress();
    const target = buffers.get(rela.appliesTo);
    if (!target) continue; // not placed: .modinfo, __versions, per-CPU, non-allocated
    if (rela.symtab !== elf.symtabIndex) {
      return err(
        moduleError('relocation', `${rela.name} refers to symbol table ${rela.symtab}, not the module's .symtab (${String(elf.symtabIndex)})`, {
          section: rela.name,
        }),
      );
    }
    // The common relocations in number arithmetic; the first one it cannot take (an error,
    // or an unusual value) and everything after it go through the bigint path below, which
    // also words every error.
    const from = applyFast(rela, target, values, counts);
    if (from < rela.count) {
      const r = applyFrom(elf, rela, target, symbols, moduleName, counts, from);
      if (!r.ok) return r;
    }
  }
  return ok(counts);
}

/** Symbol values split into 32-bit halves, once per module (undefined: `ok[i]` is 0). */
interface SplitValues {
  readonly lo: Float64Array;
  readonly hi: Float64Array;
  readonly ok: Uint8Array;
}

/** A u64 seen as two u32 halves (storing a bigint reduces it mod 2^64; no bigint is made to split it). */
const SCRATCH64 = new BigUint64Array(1);
const SCRATCH32 = new Uint32Array(SCRATCH64.buffer);
const LO = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 0 : 1;

function splitSymbolValues(elf: Elf64, symbols: SymbolValues): SplitValues {
  const n = elf.symbols.length;
  const out = { lo: new Float64Array(n), hi: new Float64Array(n), ok: new Uint8Array(n) };
  for (let k = 0; k < n; k++) {
    const v = symbols.value(k);
    if (v === undefined) continue;
    out.ok[k] = 1;
    SCRATCH64[0] = v;
    out.lo[k] = SCRATCH32[LO]!;
    out.hi[k] = SCRATCH32[1 - LO]!;
  }
  return out;
}

const TWO32N = 0x1_0000_0000;

/**
 * Applies the relocations of `rela` from the first on, as long as each is an R_X86_64_NONE,
 * 64, PC64, 32, 32S, PC32 or PLT32 with a defined symbol, a small addend, a value that fits,
 * and zeros at its place, computing `S + A (- P)` modulo 2^64 in 32-bit halves (the same
 * values as the bigint path). Returns the index of the first relocation it did not apply
 * (`rela.count` when it applied them all). Counts what it applied in `counts`.
 */
function applyFast(rela: Elf64RelaSection, target: PlacedBuffer, v: SplitValues, counts: RelocationCounts): number {
  const dv = rela.raw;
  const bytes = target.bytes;
  const out = viewOf(bytes);
  const size = bytes.length;
  const addrLo = Number(target.addr & 0xffff_ffffn);
  const addrHi = Number((target.addr >> 32n) & 0xffff_ffffn);
  // Per-type counts in an array (the fast path's types are all below 32), and the order the
  // types first appeared in: no Map operation per relocation.
  const applied = new Uint32Array(32);
  const order: number[] = [];
  let i = 0;
  for (; i < rela.count; i++) {
    const at = i * 24;
    const type = dv.getUint32(at + 8, true);
    if (type === R_X86_64_NONE) {
      if (applied[type] === 0) order.push(type);
      applied[type] = applied[type]! + 1;
      continue;
    }
    const width =
      type === R_X86_64_64 || type === R_X86_64_PC64
        ? 8
        : type === R_X86_64_32 || type === R_X86_64_32S || type === R_X86_64_PC32 || type === R_X86_64_PLT32
          ? 4
          : 0;
    const off = dv.getUint32(at, true);
    const sym = dv.getUint32(at + 12, true);
    const aHi = dv.getInt32(at + 20, true);
    if (width === 0 || dv.getUint32(at + 4, true) !== 0 || off + width > size || v.ok[sym] !== 1 || aHi > 0xfffff || aHi < -0x100000) break;
    // val = S + A (mod 2^64)
    let lo = (v.lo[sym] as number) + dv.getUint32(at + 16, true);
    let hi = (v.hi[sym] as number) + aHi;
    if (lo >= TWO32N) {
      lo -= TWO32N;
      hi += 1;
    }
    if (type === R_X86_64_PC32 || type === R_X86_64_PLT32 || type === R_X86_64_PC64) {
      // - P, P = section address + offset (mod 2^64)
      let pLo = addrLo + off;
      let pHi = addrHi;
      if (pLo >= TWO32N) {
        pLo -= TWO32N;
        pHi += 1;
      }
      lo -= pLo;
      hi -= pHi;
      if (lo < 0) {
        lo += TWO32N;
        hi -= 1;
      }
    }
    // hi is an integer within (-2^34, 2^34): ToUint32 is exactly the reduction mod 2^32.
    hi >>>= 0;
    if (type === R_X86_64_32 ? hi !== 0 : width === 4 && !((hi === 0 && lo < 0x8000_0000) || (hi === 0xffff_ffff && lo >= 0x8000_0000))) break;
    let zero = true;
    for (let b = 0; b < width; b++) if (bytes[off + b] !== 0) zero = false;
    if (!zero) break;
    out.setUint32(off, lo, true);
    if (width === 8) out.setUint32(off + 4, hi, true);
    if (applied[type] === 0) order.push(type);
    applied[type] = applied[type]! + 1;
  }
  // In the order the types first appeared, as the bigint path would have counted them.
  for (const type of order) {
    const name = relocationName(type);
    counts[name] = (counts[name] ?? 0) + applied[type]!;
  }
  return i;
}

/** Applies the relocations of `rela` from index `from` on (the bigint path). */
function applyFrom(
  elf: Elf64,
  rela: Elf64RelaSection,
  target: PlacedBuffer,
  symbols: SymbolValues,
  moduleName: string,
  counts: RelocationCounts,
  from: number,
): Result<RelocationCounts, ModuleError> {
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
  for (let i = from; i < rela.entries.length; i++) {
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
  return ok(counts);
}
