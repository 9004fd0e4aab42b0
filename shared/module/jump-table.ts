/**
 * A module's jump-label entries: `__jump_table`, 16-byte `struct jump_entry` records
 * (`s32 code; s32 target; long key;`, each relative to its own field, the low two bits of key
 * are flags; include/linux/jump_label.h with CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE), read
 * after relocation. The site's length (2 or 5) comes from the bytes at the site, as
 * arch/x86/kernel/jump_label.c decides it.
 */

import { hex } from '../addr.ts';
import { JUMP_ENTRY_SIZE, classifyJumpSite, type JumpSiteKind } from '../kernel-image/jump-table.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';
import { viewOf, type PlacedBuffer, type PlacedMemory } from './placed-memory.ts';

const MASK64 = (1n << 64n) - 1n;
const MAX_ENTRIES = 1 << 20;

/** One jump entry of a module. */
export interface ModuleJumpEntry {
  /** Address of the entry in `__jump_table`. */
  readonly entry: bigint;
  /** The patch site (`code`). */
  readonly site: bigint;
  /** Where the jump goes when enabled. */
  readonly target: bigint;
  /** The `struct static_key`, flags stripped (`jump_entry_key()`). */
  readonly key: bigint;
  /** The low two bits of the raw key. */
  readonly flags: number;
  /** Length of the instruction at the site. */
  readonly len: 2 | 5;
  /** What the site holds. */
  readonly kind: JumpSiteKind;
}

/** Reads the relocated `__jump_table`; every site must be a NOP or jmp in the module's text. */
export function readJumpEntries(table: PlacedBuffer | undefined, memory: PlacedMemory, moduleName: string): Result<ModuleJumpEntry[], ModuleError> {
  if (!table) return ok([]);
  const fail = (message: string): { ok: false; error: ModuleError } => err(moduleError('jump-table', `${moduleName}: ${message}`, { section: '__jump_table' }));
  if (table.bytes.length % JUMP_ENTRY_SIZE !== 0)
    return fail(`__jump_table is ${table.bytes.length} bytes, not a whole number of ${JUMP_ENTRY_SIZE}-byte entries`);
  const n = table.bytes.length / JUMP_ENTRY_SIZE;
  if (n > MAX_ENTRIES) return fail(`__jump_table has ${n} entries, more than ${MAX_ENTRIES}`);
  const dv = viewOf(table.bytes);
  const out: ModuleJumpEntry[] = [];
  for (let i = 0; i < n; i++) {
    const at = i * JUMP_ENTRY_SIZE;
    const entry = table.addr + BigInt(at);
    const site = (entry + BigInt(dv.getInt32(at, true))) & MASK64;
    const target = (entry + 4n + BigInt(dv.getInt32(at + 4, true))) & MASK64;
    const rawKey = dv.getBigInt64(at + 8, true);
    const key = (entry + 8n + rawKey) & MASK64 & ~3n;
    const loc = memory.locate(site, 2);
    if (!loc || !loc.section.exec) return fail(`jump entry ${i} at ${hex(entry)}: site ${hex(site)} is not inside an executable section of the module`);
    const avail = Math.min(5, loc.section.bytes.length - loc.offset);
    const c = classifyJumpSite(site, loc.section.bytes.subarray(loc.offset, loc.offset + avail));
    if (!c) {
      const shown = [...loc.section.bytes.subarray(loc.offset, loc.offset + avail)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      return fail(`jump entry ${i} at ${hex(entry)}: site ${hex(site)} (${loc.section.name}+${hex(loc.offset)}) holds ${shown}, not a 2- or 5-byte NOP or jmp`);
    }
    out.push({ entry, site, target, key, flags: Number(rawKey & 3n), len: c.length, kind: c.kind });
  }
  return ok(out);
}
