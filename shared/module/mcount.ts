/**
 * A module's ftrace sites. `__mcount_loc` holds, after relocation, the u64 address of every
 * `call __fentry__` the compiler emitted at a function entry (`-mrecord-mcount`, via
 * R_X86_64_64 relocations). At load, `ftrace_module_init()` -> `ftrace_process_locs()`
 * sorts them and `ftrace_init_nop()` -> `ftrace_make_nop()` checks each site still holds
 * `e8 rel32` calling `__fentry__` (else `ftrace_bug()`, and the module fails to load) and
 * replaces it with the 5-byte NOP `0f 1f 44 00 00` (arch/x86/kernel/ftrace.c).
 */

import { hex } from '../addr.ts';
import { decodeMcountSite } from '../kernel-image/mcount.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';
import { viewOf, type PlacedBuffer, type PlacedMemory } from './placed-memory.ts';

/** The 5-byte NOP ftrace leaves at an idle site (`x86_nops[5]`, P6_NOP5). */
export const FTRACE_NOP5: readonly number[] = Object.freeze([0x0f, 0x1f, 0x44, 0x00, 0x00]);
/** Length of an ftrace site. */
export const MCOUNT_INSN_SIZE = 5;

/** Bound on sites: one per 5 bytes of text is already impossible. */
const MAX_SITES = 1 << 20;

/**
 * Reads the sites from the relocated `__mcount_loc` buffer, checks each is `call __fentry__`
 * inside an executable section of the module, and turns it into the 5-byte NOP in `memory`.
 * Returns the sites sorted. Errors name the site.
 */
export function nopMcountSites(table: PlacedBuffer | undefined, memory: PlacedMemory, fentry: bigint, moduleName: string): Result<bigint[], ModuleError> {
  if (!table) return ok([]);
  const fail = (message: string): { ok: false; error: ModuleError } => err(moduleError('mcount', `${moduleName}: ${message}`, { section: '__mcount_loc' }));
  if (table.bytes.length % 8 !== 0) return fail(`__mcount_loc is ${table.bytes.length} bytes, not a whole number of 8-byte entries`);
  const n = table.bytes.length / 8;
  if (n > MAX_SITES) return fail(`__mcount_loc has ${n} entries, more than ${MAX_SITES}`);
  const dv = viewOf(table.bytes);
  // A BigUint64Array sorts natively in ascending unsigned order, without a comparator call per step.
  const table64 = new BigUint64Array(n);
  for (let i = 0; i < n; i++) table64[i] = dv.getBigUint64(i * 8, true);
  table64.sort();
  const sites = Array.from(table64);
  for (let i = 0; i < sites.length; i++) {
    const site = sites[i]!;
    if (i > 0 && sites[i - 1] === site) return fail(`ftrace site ${hex(site)} is listed twice in __mcount_loc`);
    const at = memory.locate(site, MCOUNT_INSN_SIZE);
    if (!at || !at.section.exec) return fail(`ftrace site ${hex(site)} is not inside an executable section of the module`);
    const bytes = at.section.bytes.subarray(at.offset, at.offset + MCOUNT_INSN_SIZE);
    const insn = decodeMcountSite(site, bytes);
    if (insn.insn !== 'call' || insn.target !== fentry) {
      const shown = [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(' ');
      const what = insn.insn === 'call' ? `a call to ${hex(insn.target ?? 0n)}, not __fentry__ (${hex(fentry)})` : `${shown}, not a call to __fentry__`;
      return fail(`ftrace site ${hex(site)} (${at.section.name}+${hex(at.offset)}) holds ${what}`);
    }
    bytes.set(FTRACE_NOP5);
  }
  return ok(sites);
}
