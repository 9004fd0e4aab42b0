/**
 * What Linux 6.1.192 does to a module's text and tables between relocation and its init
 * function, in load_module()'s order, on the module's own tables (kernel/module/main.c):
 *
 * 1. post_relocation() -> module_finalize() (arch/x86/kernel/module.c): `.parainstructions`,
 *    `.retpoline_sites`, `.return_sites`, `.altinstructions` with the same passes as boot
 *    (shared/x86/touchups/), on the CPU's final words; `.smp_locks` of the module's `.text`
 *    to UP while the kernel runs patched to UP (alternatives_smp_module_add);
 * 2. ftrace_module_init(): `__mcount_loc` sorted in place and every site NOPed (mcount.ts);
 * 3. prepare_coming_module() -> the MODULE_STATE_COMING notifiers: jump_label_add_module()
 *    sorts `__jump_table` (by key, then site; self-relative fields moved with their entry),
 *    marks the entries in init text (key bit 1) and sets the entries of keys outside the module
 *    to their key's current state; static_call_add_module() -> __static_call_init() sorts
 *    `.static_call_sites` the same way, marks init sites, and points every site at its key's
 *    current function.
 *
 * The current state of the kernel's keys is the caller's: the guest's own, or what the verifier
 * recorded of the verified kernel text (plugins/text-state.ts).
 */
import { encodeJumpLabel } from '../x86/patch-encodings.ts';
import type { TouchupContext } from '../x86/touchups/context.ts';
import { applyAlternatives } from '../x86/touchups/alternatives.ts';
import { applyParavirt } from '../x86/touchups/paravirt.ts';
import { applyRetpolines, applyReturns } from '../x86/touchups/returns.ts';
import { DS_PREFIX, LOCK_PREFIX, rewriteLockPrefixes } from '../x86/touchups/smp-locks.ts';
import { scInsn, staticCallBytes } from '../x86/touchups/static-call-init.ts';
import { touchupTables, type TouchupSource } from '../x86/touchups/source.ts';
import type { TouchupTables } from '../x86/touchups/tables.ts';
import { TextSpace } from '../x86/touchups/text-space.ts';
import type { PlacedBuffer, PlacedMemory } from './placed-memory.ts';
import { type Result, err, ok } from '../result.ts';
import { RelativeTable } from './relative-table.ts';

/** The kernel's state a module load depends on. */
export interface ModuleTouchupEnv {
  /** The kernel's touch-up context: the CPU's final words and the kernel's thunks and stubs. */
  readonly ctx: TouchupContext;
  /** `uniproc_patched`: the kernel runs with its lock prefixes patched to UP. */
  readonly uniprocessor: boolean;
  /** Whether a static key outside the module is enabled now; undefined when unknown. */
  staticKeyEnabled(key: bigint): boolean | undefined;
  /** The function a static call key outside the module points at now (null for NULL); undefined when unknown. */
  staticCallFunc(key: bigint): bigint | null | undefined;
}

/** What module_finalize and the notifiers did. */
export interface ModuleTouchupReport {
  readonly jumpEntriesSet: number;
  readonly staticCallSitesSet: number;
  readonly lockPrefixesUp: number;
}

/** The module's placed sections as a touch-up source and space. */
function moduleSpace(buffers: readonly PlacedBuffer[]): TextSpace {
  return new TextSpace(buffers.filter((b) => b.exec && b.bytes.length > 0).map((b) => ({ name: b.name, base: b.addr, bytes: b.bytes })));
}

function sourceOf(byName: ReadonlyMap<string, PlacedBuffer>, env: ModuleTouchupEnv, staticCalls: TouchupSource['staticCallSites']): TouchupSource {
  return {
    section: (name) => {
      const b = byName.get(name);
      return b ? { bytes: b.bytes, vaddr: b.addr } : undefined;
    },
    staticCallSites: staticCalls,
    staticCallKeys: [],
    symbol: (name) => env.ctx.symbols.symbol(name),
    pvOp: (type) => env.ctx.symbols.pvOp(type),
    textRanges: [],
  };
}

/**
 * Step 1, `module_finalize()`: the CPU-dependent passes on the module's placed sections, in
 * place. Returns the module's tables (for naming sites) and how many lock prefixes went to UP.
 */
export function moduleFinalize(buffers: readonly PlacedBuffer[], env: ModuleTouchupEnv): { tables: TouchupTables; lockPrefixesUp: number } {
  const byName = new Map(buffers.map((b) => [b.name, b]));
  const tables = touchupTables(sourceOf(byName, env, []));
  const space = moduleSpace(buffers);
  applyParavirt(space, tables.paravirt, env.ctx);
  applyRetpolines(space, tables.retpolines, env.ctx);
  applyReturns(space, tables.returns, env.ctx);
  applyAlternatives(space, tables.alternatives, env.ctx);
  let lockPrefixesUp = 0;
  const text = byName.get('.text');
  if (env.uniprocessor && text)
    lockPrefixesUp = rewriteLockPrefixes(space, tables.smpLocks, text.addr, text.addr + BigInt(text.bytes.length), LOCK_PREFIX, DS_PREFIX).length;
  return { tables, lockPrefixesUp };
}

const JUMP_LAYOUT = [
  { off: 0, size: 4 },
  { off: 4, size: 4 },
  { off: 8, size: 8 },
] as const;
const STATIC_CALL_LAYOUT = [
  { off: 0, size: 4 },
  { off: 4, size: 4 },
] as const;

/** Init-text ranges of the module (`within_module_init()`). */
export type InitRanges = readonly (readonly [bigint, bigint])[];

const inRanges = (ranges: InitRanges, a: bigint): boolean => ranges.some(([s, e]) => a >= s && a < e);

/** A module's own static call key: its function as the module's data initialises it. */
function ownStaticCallFunc(memory: PlacedMemory, key: bigint): bigint | null | undefined {
  const at = memory.locate(key, 8);
  if (!at) return undefined;
  const f = new DataView(at.section.bytes.buffer, at.section.bytes.byteOffset + at.offset, 8).getBigUint64(0, true);
  return f === 0n ? null : f;
}

/**
 * Step 3, the COMING notifiers: `__jump_table` and `.static_call_sites` sorted and marked,
 * the entries of outside keys set to their key's state, every static call site pointed at its
 * key's function. `init` are the module's init ranges; `memory` holds every placed section.
 */
export function moduleComing(
  buffers: readonly PlacedBuffer[],
  memory: PlacedMemory,
  init: InitRanges,
  env: ModuleTouchupEnv,
): Result<Omit<ModuleTouchupReport, 'lockPrefixesUp'>, string> {
  const byName = new Map(buffers.map((b) => [b.name, b]));
  const space = moduleSpace(buffers);
  const ownsKey = (key: bigint): boolean => memory.locate(key, 1) !== undefined;
  let jumpEntriesSet = 0;
  const jt = byName.get('__jump_table');
  if (jt) {
    const t = new RelativeTable(jt, 16, JUMP_LAYOUT);
    t.sort(true);
    // jump_entry_set_init(): bit 1 set for a site in init text, cleared otherwise.
    for (let i = 0; i < t.length; i++) t.setFlags(i, (t.flags(i) & ~2) | (inRanges(init, t.field(i, 0)) ? 2 : 0));
    t.write();
    for (let i = 0; i < t.length; i++) {
      const key = t.field(i, 2);
      if (ownsKey(key)) continue;
      const enabled = env.staticKeyEnabled(key);
      if (enabled === undefined) continue;
      const site = t.field(i, 0);
      const at = space.view(site, 2);
      if (!at) continue;
      const len: 2 | 5 = at[0] === 0x66 || at[0] === 0xeb ? 2 : 5;
      const jumps = at[0] === 0xeb || at[0] === 0xe9;
      const branch = (t.flags(i) & 1) === 1;
      // jump_label_type() = enabled ^ branch: the site must jump exactly then.
      if (jumps !== (enabled !== branch)) {
        space.write(site, encodeJumpLabel(site, len, t.field(i, 1), enabled !== branch));
        jumpEntriesSet++;
      }
    }
  }
  let staticCallSitesSet = 0;
  const sc = byName.get('.static_call_sites');
  if (sc) {
    // static_call_add_module(): a site whose key field points into kernel text names a
    // trampoline (the key is not exported); the key is looked up (tramp_key_lookup()).
    const t = new RelativeTable(sc, 8, STATIC_CALL_LAYOUT);
    for (let i = 0; i < t.length; i++) {
      const addr = t.field(i, 1);
      if (!env.ctx.symbols.isKernelText(addr)) continue;
      const key = env.ctx.symbols.staticCallKeyOfTrampoline(addr);
      if (key === undefined)
        return err(
          `static call site 0x${t.field(i, 0).toString(16)} uses trampoline 0x${addr.toString(16)}, which has no key ("Failed to fixup __raw_static_call() usage")`,
        );
      t.setField(i, 1, key);
    }
    // Written and read again: the s32 key field keeps only the low 32 bits, and the sort sees
    // what the kernel's table then holds.
    t.write();
    t.decode();
    t.sort(false);
    for (let i = 0; i < t.length; i++) if (inRanges(init, t.field(i, 0))) t.setFlags(i, t.flags(i) | 2); // static_call_set_init
    t.write();
    for (let i = 0; i < t.length; i++) {
      const site = t.field(i, 0);
      const key = t.field(i, 1);
      const func = ownsKey(key) ? ownStaticCallFunc(memory, key) : env.staticCallFunc(key);
      if (func === undefined) continue;
      const code = staticCallBytes(space, env.ctx, site, scInsn(func === null, (t.flags(i) & 1) === 1), func);
      if (code && space.write(site, code)) staticCallSitesSet++;
    }
  }
  return ok({ jumpEntriesSet, staticCallSitesSet });
}

/** `ftrace_process_locs()` on a module: `__mcount_loc` sorted in place (the sites are NOPed by mcount.ts). */
export function sortMcountTable(table: PlacedBuffer | undefined, sorted: readonly bigint[]): void {
  if (!table || sorted.length * 8 !== table.bytes.length) return;
  const dv = new DataView(table.bytes.buffer, table.bytes.byteOffset, table.bytes.byteLength);
  sorted.forEach((s, i) => dv.setBigUint64(i * 8, s, true));
}
