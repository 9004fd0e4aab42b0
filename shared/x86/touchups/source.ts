/**
 * Where the touch-up tables and symbols come from, in one shape: the kernel image file for
 * the guest and the manifest builder (shared/kernel-image/touchup-tables.ts), the signed
 * manifest for the verifier (verifier-vm/end-state/). Both turn a source into tables and a
 * context with the functions here, so the guest's boot and the verifier's prediction read
 * the same tables the same way.
 */
import { returnThunkName, type CpuModel } from '../cpu-model.ts';
import type { TouchupContext, TouchupCpu, TouchupSymbols } from './context.ts';
import { readAltInstructions, readParainstructions, readS32Table, type StaticCallSiteEntry, type TouchupTables } from './tables.ts';

/** The table sections, by their ELF names. */
export const TOUCHUP_SECTIONS = Object.freeze(['.parainstructions', '.retpoline_sites', '.return_sites', '.altinstructions', '.smp_locks'] as const);

/** A static call key as the touch-ups need it. */
export interface SourceStaticCallKey {
  readonly key: bigint;
  readonly trampoline: bigint;
  /** The function the file initialises the key with; null for NULL. */
  readonly func: bigint | null;
}

/** A kernel's touch-up inputs. */
export interface TouchupSource {
  /** A table section's bytes and address, undefined when the kernel has none. */
  section(name: string): { readonly bytes: Uint8Array; readonly vaddr: bigint } | undefined;
  readonly staticCallSites: readonly StaticCallSiteEntry[];
  readonly staticCallKeys: readonly SourceStaticCallKey[];
  /** A symbol's address. */
  symbol(name: string): bigint | undefined;
  /** `pv_ops[type]` as the file initialises it (0n for NULL); undefined when unknown. */
  pvOp(type: number): bigint | undefined;
  /** The kernel's text ranges (`kernel_text_address()`), half-open. */
  readonly textRanges: readonly (readonly [bigint, bigint])[];
}

/** The tables of `src`, in file order; a missing section is an empty table. */
export function touchupTables(src: TouchupSource): TouchupTables {
  const s32 = (name: string, skipZero = false): bigint[] => {
    const s = src.section(name);
    return s ? readS32Table(s.bytes, s.vaddr, skipZero) : [];
  };
  const alt = src.section('.altinstructions');
  const para = src.section('.parainstructions');
  return {
    paravirt: para ? readParainstructions(para.bytes) : [],
    retpolines: s32('.retpoline_sites'),
    returns: s32('.return_sites'),
    alternatives: alt ? readAltInstructions(alt.bytes, alt.vaddr) : [],
    smpLocks: s32('.smp_locks', true),
    staticCalls: src.staticCallSites,
  };
}

/** The symbols every pass needs, by name (the manifest lists exactly these). */
export const TOUCHUP_SYMBOLS = Object.freeze([
  '__x86_indirect_thunk_array',
  '__x86_return_thunk',
  'its_return_thunk',
  'retbleed_return_thunk',
  'srso_return_thunk',
  'srso_alias_return_thunk',
  '_paravirt_nop',
  'paravirt_BUG',
  '__static_call_return0',
  '__static_call_return',
  // PREEMPT_DYNAMIC's static calls and their functions (preempt-dynamic.ts).
  '__SCK__cond_resched',
  '__SCK__might_resched',
  '__SCK__preempt_schedule',
  '__SCK__preempt_schedule_notrace',
  '__SCK__irqentry_exit_cond_resched',
  '__cond_resched',
  'preempt_schedule_thunk',
  'preempt_schedule_notrace_thunk',
  'raw_irqentry_exit_cond_resched',
] as const);

/** Symbols that must exist for any touch-up to be predicted. */
const REQUIRED = ['__x86_indirect_thunk_array', '__x86_return_thunk'] as const;

/** The context of `src` on `cpu`; an error names a missing required symbol. */
export function touchupContext(
  src: TouchupSource,
  cpu: TouchupCpu & Pick<CpuModel, 'capabilities'>,
): { ok: true; value: TouchupContext } | { ok: false; error: string } {
  for (const name of REQUIRED) if (src.symbol(name) === undefined) return { ok: false, error: `the kernel has no ${name}` };
  const funcs = new Map<bigint, bigint | null>();
  const tramps = new Map<bigint, bigint>();
  const keysByTramp = new Map<bigint, bigint>();
  for (const k of src.staticCallKeys) {
    funcs.set(k.key, k.func);
    tramps.set(k.key, k.trampoline);
    keysByTramp.set(k.trampoline, k.key);
  }
  const returnThunk = src.symbol('__x86_return_thunk')!;
  const symbols: TouchupSymbols = {
    indirectThunkArray: src.symbol('__x86_indirect_thunk_array')!,
    returnThunk,
    x86ReturnThunk: src.symbol(returnThunkName(cpu)) ?? returnThunk,
    itsReturnThunk: src.symbol('its_return_thunk'),
    paravirtNop: src.symbol('_paravirt_nop'),
    paravirtBug: src.symbol('paravirt_BUG'),
    staticCallReturn0: src.symbol('__static_call_return0'),
    staticCallReturn: src.symbol('__static_call_return'),
    pvOp: (type) => src.pvOp(type),
    staticCallFunc: (key) => funcs.get(key),
    staticCallTrampoline: (key) => tramps.get(key),
    staticCallKeyOfTrampoline: (tramp) => keysByTramp.get(tramp),
    symbol: (name) => src.symbol(name),
    isKernelText: (addr) => src.textRanges.some(([s, e]) => addr >= s && addr < e),
  };
  return { ok: true, value: { cpu, symbols } };
}
