/**
 * Static calls of vmlinux (CONFIG_HAVE_STATIC_CALL_INLINE, x86-64): the call sites in
 * `[__start_static_call_sites, __stop_static_call_sites)`, the keys (`__SCK__<name>`) and
 * their trampolines (`__SCT__<name>`).
 *
 * `struct static_call_site { s32 addr; s32 key; }` (include/linux/static_call_types.h), 8
 * bytes, each field relative to its own address. The low two bits of `key` are flags:
 * `STATIC_CALL_SITE_TAIL` (1, the site is a tail call, `jmp`) and `STATIC_CALL_SITE_INIT` (2,
 * the site is in init text; set at boot by `__static_call_init()`, never in the file). objtool
 * writes the table; the compiler emitted each site as `call __SCT__<name>` (`jmp` for a tail
 * call), so in the file image every site targets its key's trampoline.
 *
 * A key is `struct static_call_key { void *func; unsigned long type; }` in .data; a trampoline
 * is 8 bytes of .text: `e9 rel32` to the key's function (or a return form for a NULL key),
 * then `0f b9 cc` (`ud1 %esp, %ecx`, `tramp_ud` in arch/x86/kernel/static_call.c), the
 * signature `__static_call_validate()` checks before patching it.
 *
 * `static_call_update(name, func)` (kernel/static_call_inline.c `__static_call_update()`)
 * rewrites the trampoline and every site of the key through `__static_call_transform()`:
 * a call site becomes `call func` (NOP5 when func is NULL, `2e 2e 2e 31 c0` when func is
 * `__static_call_return0`), a tail site or the trampoline `jmp func` (a return when NULL).
 *
 * In the Debian 6.1 fixture: 4,085 sites (4,013 in .text, 72 in .init.text), 4,058 `call`
 * (flags 0) and 27 `jmp` (flags TAIL), every one to its key's trampoline; 656 keys have
 * sites, of 686 `__SCK__` symbols, each with its `__SCT__` trampoline (`e9 rel32` + ud1).
 */

import { hex } from '../addr.ts';
import { err, ok, type Result } from '../result.ts';
import { kernelImageError, type KernelImageError } from './kernel-image-errors.ts';
import type { KernelLayout } from './kernel-layout.ts';
import type { SystemMap } from './system-map.ts';

/** `sizeof(struct static_call_site)`. */
export const STATIC_CALL_SITE_SIZE = 8;
/** Key flag: the site is a tail call (`jmp`). */
export const STATIC_CALL_SITE_TAIL = 1;
/** Key flag: the site is in init text (set at boot, not in the file image). */
export const STATIC_CALL_SITE_INIT = 2;
/** Prefix of a key symbol (`STATIC_CALL_KEY_PREFIX`). */
export const STATIC_CALL_KEY_PREFIX = '__SCK__';
/** Prefix of a trampoline symbol (`STATIC_CALL_TRAMP_PREFIX`). */
export const STATIC_CALL_TRAMP_PREFIX = '__SCT__';
/** The `ud1 %esp, %ecx` signature in bytes 5..7 of every trampoline (`tramp_ud`). */
export const STATIC_CALL_TRAMP_SIGNATURE: readonly number[] = Object.freeze([0x0f, 0xb9, 0xcc]);
/** Size of a trampoline: the 5-byte instruction plus the signature. */
export const STATIC_CALL_TRAMP_SIZE = 8;

/** The 5-byte instruction at a static-call site or trampoline. */
export type StaticCallInsnKind = 'call' | 'jmp' | 'nop5' | 'xor5rax' | 'ret' | 'other';

/** One decoded `.static_call_sites` entry. */
export interface StaticCallSite {
  /** Address of the entry itself. */
  readonly entry: bigint;
  /** The call site (`addr`). */
  readonly site: bigint;
  /** The `struct static_call_key` address, flags masked off. */
  readonly key: bigint;
  /** The low two bits of the raw key (TAIL | INIT). */
  readonly flags: number;
  /** `flags & STATIC_CALL_SITE_TAIL`. */
  readonly tail: boolean;
  /** The section holding the site (`.text` or `.init.text` in the fixture). */
  readonly section: string;
  /** What the file image holds at the site. */
  readonly kind: StaticCallInsnKind;
  /** For `call` / `jmp`: the destination as encoded. */
  readonly target: bigint | undefined;
}

/** One static call key with its trampoline. */
export interface StaticCallKey {
  /** The static call's name (the symbol without `__SCK__`). */
  readonly name: string;
  /** Address of `__SCK__<name>`. */
  readonly key: bigint;
  /** Address of `__SCT__<name>`. */
  readonly trampoline: bigint;
  /** `key->func` in the file image (0 for NULL), or undefined when the key is not file-backed. */
  readonly func: bigint | undefined;
  /** What the trampoline's first 5 bytes hold. */
  readonly trampolineKind: StaticCallInsnKind;
  /** For a `jmp` trampoline: where it jumps. */
  readonly trampolineTarget: bigint | undefined;
  /** Whether bytes 5..7 of the trampoline are the ud1 signature. */
  readonly signed: boolean;
  /** How many sites use the key. */
  readonly siteCount: number;
}

/** The static calls of an image. */
export interface StaticCallTable {
  /** Every site, in table order. */
  readonly sites: readonly StaticCallSite[];
  /** Every `__SCK__` key, in System.map order. */
  readonly keys: readonly StaticCallKey[];
}

const MASK64 = 0xffffffffffffffffn;
const NOP5 = [0x0f, 0x1f, 0x44, 0x00, 0x00] as const;
const XOR5RAX = [0x2e, 0x2e, 0x2e, 0x31, 0xc0] as const;
const RET5 = [0xc3, 0xcc, 0xcc, 0xcc, 0xcc] as const;

const same = (bytes: Uint8Array, want: readonly number[]): boolean => want.every((x, i) => bytes[i] === x);

/** Decodes the 5 bytes at a static-call site or trampoline (`bytes` shorter than 5: `other`). */
export function decodeStaticCallInsn(at: bigint, bytes: Uint8Array): { kind: StaticCallInsnKind; target: bigint | undefined } {
  if (bytes.length < 5) return { kind: 'other', target: undefined };
  const b0 = bytes[0];
  if (b0 === 0xe8 || b0 === 0xe9) {
    const rel = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getInt32(0, true);
    return { kind: b0 === 0xe8 ? 'call' : 'jmp', target: (at + 5n + BigInt(rel)) & MASK64 };
  }
  if (same(bytes, NOP5)) return { kind: 'nop5', target: undefined };
  if (same(bytes, XOR5RAX)) return { kind: 'xor5rax', target: undefined };
  if (same(bytes, RET5)) return { kind: 'ret', target: undefined };
  return { kind: 'other', target: undefined };
}

/**
 * Reads the static call sites, keys and trampolines. A kernel without a static call table
 * (no `__start_static_call_sites` and no `__stop_static_call_sites`) has none; a table that is
 * half-named, not file-backed or not whole entries, a site outside the file image or holding
 * an instruction that is not a static call, a key that is not a `__SCK__` symbol, and a key
 * without its `__SCT__` trampoline are errors naming the entry.
 */
export function readStaticCalls(layout: KernelLayout, map: SystemMap): Result<StaticCallTable, KernelImageError> {
  const start = map.address('__start_static_call_sites');
  const stop = map.address('__stop_static_call_sites');
  if (start === undefined && stop === undefined) return ok({ sites: [], keys: [] });
  if (start === undefined || stop === undefined) {
    return err(kernelImageError('missing-symbol', 'System.map has only one of __start_static_call_sites / __stop_static_call_sites'));
  }
  if (stop < start || (stop - start) % BigInt(STATIC_CALL_SITE_SIZE) !== 0n) {
    return err(
      kernelImageError('static-calls', `static call table [${hex(start)}, ${hex(stop)}) is not a whole number of ${STATIC_CALL_SITE_SIZE}-byte entries`),
    );
  }
  const table = layout.readVirt(start, Number(stop - start));
  if (table === undefined) return err(kernelImageError('static-calls', `static call table at ${hex(start)} is not in the file image`));

  // Keys first: every site must name one of them.
  const keyNames = new Map<bigint, string>();
  const keyOrder: Array<{ name: string; key: bigint; line: number }> = [];
  for (const s of map.symbols) {
    if (!s.name.startsWith(STATIC_CALL_KEY_PREFIX)) continue;
    const name = s.name.slice(STATIC_CALL_KEY_PREFIX.length);
    if (name === '' || keyNames.has(s.address)) continue;
    keyNames.set(s.address, name);
    keyOrder.push({ name, key: s.address, line: s.line });
  }

  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const count = table.length / STATIC_CALL_SITE_SIZE;
  const sites: StaticCallSite[] = [];
  const perKey = new Map<bigint, number>();
  for (let i = 0; i < count; i++) {
    const at = i * STATIC_CALL_SITE_SIZE;
    const entry = start + BigInt(at);
    const site = (entry + BigInt(dv.getInt32(at, true))) & MASK64;
    const rawKey = (entry + 4n + BigInt(dv.getInt32(at + 4, true))) & MASK64;
    const flags = Number(rawKey & 3n);
    const key = rawKey & ~3n;
    const where = `static call site ${i} at ${hex(entry)}`;
    if (!keyNames.has(key)) return err(kernelImageError('static-calls', `${where}: key ${hex(key)} is not a ${STATIC_CALL_KEY_PREFIX} symbol`));
    const bytes = layout.readVirt(site, 5);
    const section = layout.sectionAt(site);
    if (bytes === undefined || section === undefined) return err(kernelImageError('static-calls', `${where}: site ${hex(site)} is not in the file image`));
    const d = decodeStaticCallInsn(site, bytes);
    if (d.kind === 'other') {
      const shown = [...bytes].map((x) => x.toString(16).padStart(2, '0')).join(' ');
      return err(kernelImageError('static-calls', `${where}: site ${hex(site)} holds ${shown}, not a static call (call, jmp, NOP5, xor or ret)`));
    }
    sites.push({ entry, site, key, flags, tail: (flags & STATIC_CALL_SITE_TAIL) !== 0, section: section.name, kind: d.kind, target: d.target });
    perKey.set(key, (perKey.get(key) ?? 0) + 1);
  }

  const keys: StaticCallKey[] = [];
  for (const k of keyOrder) {
    const trampoline = map.address(`${STATIC_CALL_TRAMP_PREFIX}${k.name}`);
    if (trampoline === undefined) {
      return err(
        kernelImageError(
          'static-calls',
          `System.map line ${k.line}: key ${STATIC_CALL_KEY_PREFIX}${k.name} has no ${STATIC_CALL_TRAMP_PREFIX}${k.name} trampoline`,
        ),
      );
    }
    const tb = layout.readVirt(trampoline, STATIC_CALL_TRAMP_SIZE);
    const d = tb === undefined ? { kind: 'other' as const, target: undefined } : decodeStaticCallInsn(trampoline, tb);
    const kb = layout.readVirt(k.key, 8);
    const func = kb === undefined ? undefined : new DataView(kb.buffer, kb.byteOffset, 8).getBigUint64(0, true);
    keys.push({
      name: k.name,
      key: k.key,
      trampoline,
      func,
      trampolineKind: d.kind,
      trampolineTarget: d.target,
      signed: tb !== undefined && same(tb.subarray(5), STATIC_CALL_TRAMP_SIGNATURE),
      siteCount: perKey.get(k.key) ?? 0,
    });
  }
  return ok({ sites, keys });
}

/**
 * The function entry points of kernel text: the distinct addresses of System.map's text
 * symbols (`T`, `t`, and weak `W`) in `[start, end)`, sorted. System.map has no sizes or
 * types beyond the letter, so a linker marker that shares an address with a function
 * (`__noinstr_text_start`) adds nothing, and one on its own would count as an entry.
 */
export function textFunctionEntries(map: SystemMap, start: bigint, end: bigint): bigint[] {
  const out: bigint[] = [];
  let prev = -1n;
  for (const s of map.byAddress) {
    if (s.address < start || s.address >= end) continue;
    if (s.type !== 'T' && s.type !== 't' && s.type !== 'W') continue;
    if (s.address === prev) continue;
    out.push(s.address);
    prev = s.address;
  }
  return out;
}
