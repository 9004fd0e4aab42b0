/**
 * Static-key (jump label) sites of vmlinux: `[__start___jump_table, __stop___jump_table)`.
 *
 * x86-64 `struct jump_entry` (arch/x86/include/asm/jump_label.h, include/linux/jump_label.h
 * with CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE): `s32 code; s32 target; long key;`, 16 bytes,
 * each field relative to its own address. The low two bits of `key` are flags:
 * `jump_entry_key()` masks them off. Bit 0 is "branch" (the default direction,
 * `jump_entry_is_branch`). Bit 1 means "init" at run time (`jump_entry_is_init`), but
 * `jump_label_init()` only sets or clears it at boot (`jump_entry_set_init(entry, in_init)`);
 * in the file image, with CONFIG_HAVE_JUMP_LABEL_HACK=y (the fixture config), bit 1 marks the
 * `arch_static_branch()` sites the compiler emitted as `jmp` for objtool to NOP
 * (`"i" (2 | branch)` in arch/x86/include/asm/jump_label.h): 6,095 of the fixture's 6,299.
 * A site is a 2-byte (`66 90` / `eb rel8`) or 5-byte (`0f 1f 44 00 00` / `e9 rel32`)
 * instruction.
 */

import { hex } from '../addr.ts';
import { err, ok, type Result } from '../result.ts';
import { kernelImageError, type KernelImageError } from './kernel-image-errors.ts';
import type { KernelLayout } from './kernel-layout.ts';
import type { SystemMap } from './system-map.ts';

/** Size of `struct jump_entry` on x86-64. */
export const JUMP_ENTRY_SIZE = 16;
/** Key flag: the branch is taken by default. */
export const JUMP_TYPE_TRUE = 1;
/**
 * Key flag bit 1: "site is in init text" at run time; in the file image, "objtool NOPed
 * this `jmp`" (see the file comment).
 */
export const JUMP_TYPE_INIT = 2;

/** The instruction at a jump-label site. */
export type JumpSiteKind = 'nop2' | 'nop5' | 'jmp8' | 'jmp32';

/** One decoded jump entry. */
export interface JumpEntry {
  /** Address of the entry itself in `__jump_table`. */
  readonly entry: bigint;
  /** The patch site (`code`). */
  readonly site: bigint;
  /** Where the jump goes when enabled (`target`). */
  readonly target: bigint;
  /** The `struct static_key` address, flags masked off. */
  readonly key: bigint;
  /** The low two bits of the raw key (JUMP_TYPE_TRUE | JUMP_TYPE_INIT). */
  readonly flags: number;
  /** Instruction length at the site. */
  readonly length: 2 | 5;
  /** What the file image holds at the site. */
  readonly kind: JumpSiteKind;
  /** For `jmp8` / `jmp32`: the jump's destination as encoded. */
  readonly jumpsTo: bigint | undefined;
}

const MASK64 = 0xffffffffffffffffn;
const NOP5 = [0x0f, 0x1f, 0x44, 0x00, 0x00] as const;

/** Classifies the instruction at a site from its first bytes (at least 2, ideally 5). */
export function classifyJumpSite(site: bigint, bytes: Uint8Array): { kind: JumpSiteKind; length: 2 | 5; jumpsTo: bigint | undefined } | undefined {
  const b0 = bytes[0];
  if (b0 === 0x66 && bytes[1] === 0x90) return { kind: 'nop2', length: 2, jumpsTo: undefined };
  if (b0 === 0xeb && bytes.length >= 2) {
    const rel = (bytes[1]! << 24) >> 24;
    return { kind: 'jmp8', length: 2, jumpsTo: (site + 2n + BigInt(rel)) & MASK64 };
  }
  if (bytes.length >= 5 && NOP5.every((x, i) => bytes[i] === x)) return { kind: 'nop5', length: 5, jumpsTo: undefined };
  if (b0 === 0xe9 && bytes.length >= 5) {
    const rel = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getInt32(0, true);
    return { kind: 'jmp32', length: 5, jumpsTo: (site + 5n + BigInt(rel)) & MASK64 };
  }
  return undefined;
}

/** Reads and decodes the jump table; an entry whose site is not a known form is an error. */
export function readJumpTable(layout: KernelLayout, map: SystemMap): Result<JumpEntry[], KernelImageError> {
  const start = map.address('__start___jump_table');
  const stop = map.address('__stop___jump_table');
  if (start === undefined || stop === undefined) {
    return err(kernelImageError('missing-symbol', 'System.map has no __start___jump_table / __stop___jump_table'));
  }
  if (stop < start || (stop - start) % BigInt(JUMP_ENTRY_SIZE) !== 0n) {
    return err(kernelImageError('jump-table', `jump table [${hex(start)}, ${hex(stop)}) is not a whole number of ${JUMP_ENTRY_SIZE}-byte entries`));
  }
  const table = layout.readVirt(start, Number(stop - start));
  if (table === undefined) return err(kernelImageError('jump-table', `jump table at ${hex(start)} is not in the file image`));
  const dv = new DataView(table.buffer, table.byteOffset, table.byteLength);
  const count = table.length / JUMP_ENTRY_SIZE;
  const entries: JumpEntry[] = [];
  for (let i = 0; i < count; i++) {
    const at = i * JUMP_ENTRY_SIZE;
    const entry = start + BigInt(at);
    const site = (entry + BigInt(dv.getInt32(at, true))) & MASK64;
    const target = (entry + 4n + BigInt(dv.getInt32(at + 4, true))) & MASK64;
    const rawKey = dv.getBigInt64(at + 8, true);
    const key = (entry + 8n + (rawKey & ~3n)) & MASK64;
    const flags = Number(rawKey & 3n);
    const bytes = layout.readVirt(site, 5) ?? layout.readVirt(site, 2);
    if (bytes === undefined) return err(kernelImageError('jump-table', `jump entry ${i} at ${hex(entry)}: site ${hex(site)} is not in the file image`));
    const c = classifyJumpSite(site, bytes);
    if (c === undefined) {
      const shown = [...bytes].map((x) => x.toString(16).padStart(2, '0')).join(' ');
      return err(kernelImageError('jump-table', `jump entry ${i} at ${hex(entry)}: site ${hex(site)} holds ${shown}, not a 2- or 5-byte NOP or jmp`));
    }
    entries.push({ entry, site, target, key, flags, length: c.length, kind: c.kind, jumpsTo: c.jumpsTo });
  }
  return ok(entries);
}
