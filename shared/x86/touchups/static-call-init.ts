/**
 * Static calls at boot: `static_call_init()` -> `__static_call_init()` of Linux 6.1.192
 * kernel/static_call_inline.c, which points every inline `.static_call_sites` site at its
 * key's current function through `arch_static_call_transform(site, NULL, func, tail)`, and
 * `__static_call_transform()` of arch/x86/kernel/static_call.c, which writes the forms:
 * call site `call func` (NOP5 for NULL, `2e 2e 2e 31 c0` for `__static_call_return0`), tail
 * site `jmp func` (a return for NULL), a `Jcc` tail site re-targeted.
 *
 * x86 calls static_call_init() from setup_arch(), long before the mitigations are chosen
 * (arch_cpu_finalize_init -> cpu_select_mitigations), so X86_FEATURE_RETHUNK is not yet set
 * there: callers pass a context whose words do not have it (see {@link earlyContext}).
 */
import { X86_FEATURE } from '../cpu-model.ts';
import { type TouchupContext, cpuWantsRethunkAt, has } from './context.ts';
import { X86_NOPS } from './nops.ts';
import type { StaticCallSiteEntry } from './tables.ts';
import { type TextSpace, genRel32 } from './text-space.ts';

const XOR5RAX = [0x2e, 0x2e, 0x2e, 0x31, 0xc0] as const;
const RETINSN = [0xc3, 0xcc, 0xcc, 0xcc, 0xcc] as const;

/** `enum insn_type` of arch/x86/kernel/static_call.c. */
export type StaticCallInsnType = 'call' | 'nop' | 'jmp' | 'ret';

/** `__sc_insn(null, tail)`. */
export function scInsn(isNull: boolean, tail: boolean): StaticCallInsnType {
  return tail ? (isNull ? 'ret' : 'jmp') : isNull ? 'nop' : 'call';
}

/**
 * `__static_call_transform(insn, type, func, modinit)`: the bytes the site gets (undefined
 * when it already holds them or is outside the space). `func` null is NULL.
 */
export function staticCallBytes(space: TextSpace, ctx: TouchupContext, addr: bigint, type: StaticCallInsnType, func: bigint | null): Uint8Array | undefined {
  const cur = space.view(addr, 6);
  const cur5 = space.view(addr, 5);
  if (!cur5) return undefined;
  let code: Uint8Array;
  const jcc = (type === 'jmp' || type === 'ret') && cur !== undefined && cur[0] === 0x0f && (cur[1]! & 0xf0) === 0x80 ? cur[1]! : 0;
  if (jcc) {
    let target = func;
    if (target === null) target = has(ctx, X86_FEATURE.RETHUNK) ? ctx.symbols.returnThunk : (ctx.symbols.staticCallReturn ?? 0n);
    code = new Uint8Array(6);
    code[0] = 0x0f;
    code.set(genRel32(jcc, addr + 1n, target), 1);
  } else if (type === 'call') {
    code = func !== null && func === ctx.symbols.staticCallReturn0 ? Uint8Array.from(XOR5RAX) : genRel32(0xe8, addr, func ?? 0n);
  } else if (type === 'nop') code = Uint8Array.from(X86_NOPS[5]!);
  else if (type === 'jmp') code = genRel32(0xe9, addr, func ?? 0n);
  else code = cpuWantsRethunkAt(ctx, addr) ? genRel32(0xe9, addr, ctx.symbols.x86ReturnThunk) : Uint8Array.from(RETINSN);
  const now = space.view(addr, code.length);
  if (!now) return undefined;
  if (now.every((b, i) => b === code[i])) return undefined;
  return code;
}

/** `__static_call_transform()` applied in place (text_poke_early). */
export function staticCallTransform(space: TextSpace, ctx: TouchupContext, addr: bigint, type: StaticCallInsnType, func: bigint | null): void {
  const code = staticCallBytes(space, ctx, addr, type, func);
  if (code) space.write(addr, code);
}

/**
 * `__static_call_init(mod, start, stop)`: every site to its key's function. Sites whose key
 * is unknown (`staticCallFunc` undefined) are left alone. Returns the number of sites written.
 */
export function staticCallInit(space: TextSpace, sites: readonly StaticCallSiteEntry[], ctx: TouchupContext): number {
  let written = 0;
  for (const s of sites) {
    const func = ctx.symbols.staticCallFunc(s.key);
    if (func === undefined) continue;
    const code = staticCallBytes(space, ctx, s.site, scInsn(func === null, s.tail), func);
    if (code && space.write(s.site, code)) written++;
  }
  return written;
}

/** The context as it is when setup_arch() runs static_call_init(): no mitigation features yet. */
export function earlyContext(ctx: TouchupContext): TouchupContext {
  const caps = [...ctx.cpu.capabilities];
  const clear = (bit: number): void => {
    caps[bit >>> 5] = (caps[bit >>> 5]! & ~(1 << (bit & 31))) >>> 0;
  };
  for (const bit of [X86_FEATURE.RETHUNK, X86_FEATURE.UNRET, X86_FEATURE.SRSO, X86_FEATURE.SRSO_ALIAS, X86_FEATURE.RETPOLINE, X86_FEATURE.RETPOLINE_LFENCE])
    clear(bit);
  return { cpu: { ...ctx.cpu, capabilities: caps }, symbols: { ...ctx.symbols, x86ReturnThunk: ctx.symbols.returnThunk } };
}

/** The static call keys' functions as boot changes them (`key->func`). */
export class StaticCallState {
  private readonly funcs = new Map<bigint, bigint | null>();
  private readonly sitesByKey = new Map<bigint, StaticCallSiteEntry[]>();

  constructor(
    private readonly ctx: TouchupContext,
    sites: readonly StaticCallSiteEntry[],
  ) {
    for (const s of sites) {
      const list = this.sitesByKey.get(s.key);
      if (list) list.push(s);
      else this.sitesByKey.set(s.key, [s]);
    }
  }

  /** The key's current function (null for NULL), undefined for an unknown key. */
  func(key: bigint): bigint | null | undefined {
    return this.funcs.has(key) ? this.funcs.get(key)! : this.ctx.symbols.staticCallFunc(key);
  }

  /**
   * `__static_call_update(key, tramp, func)` of kernel/static_call_inline.c during boot
   * (system_state < SYSTEM_RUNNING, so init sites too): nothing when the key already holds
   * `func`; else the trampoline (`jmp func`, a return for NULL) and every site of the key.
   * `ctx` is the context at the time of the update (its features decide the return forms).
   * Returns the addresses written.
   */
  update(space: TextSpace, ctx: TouchupContext, key: bigint, func: bigint | null): bigint[] {
    const cur = this.func(key);
    if (cur === undefined || cur === func) return [];
    this.funcs.set(key, func);
    const written: bigint[] = [];
    const tramp = this.ctx.symbols.staticCallTrampoline(key);
    if (tramp !== undefined) {
      const code = staticCallBytes(space, ctx, tramp, scInsn(func === null, true), func);
      if (code && space.write(tramp, code)) written.push(tramp);
    }
    for (const s of this.sitesByKey.get(key) ?? []) {
      if (!ctx.symbols.isKernelText(s.site)) continue;
      const code = staticCallBytes(space, ctx, s.site, scInsn(func === null, s.tail), func);
      if (code && space.write(s.site, code)) written.push(s.site);
    }
    return written;
  }
}

/**
 * The function a static call trampoline's bytes point at now: `jmp func`, NULL for a return
 * form (`ret; int3`, or a `jmp` to a return thunk), undefined for bytes that are neither.
 * The kernel text is the record of a key's state (`key->func` and the trampoline always move
 * together in __static_call_update()).
 */
export function trampolineFunc(tramp: bigint, bytes: Uint8Array, returnThunks: ReadonlySet<bigint>): bigint | null | undefined {
  if (bytes[0] === 0xc3) return null;
  if (bytes[0] !== 0xe9 || bytes.length < 5) return undefined;
  const rel = bytes[1]! | (bytes[2]! << 8) | (bytes[3]! << 16) | (bytes[4]! << 24) | 0;
  const target = BigInt.asUintN(64, tramp + 5n + BigInt(rel));
  return returnThunks.has(target) ? null : target;
}

/** The return thunks a NULL trampoline may jump to: `__x86_return_thunk` and the one the CPU uses. */
export function returnThunkSet(ctx: TouchupContext): Set<bigint> {
  return new Set([ctx.symbols.returnThunk, ctx.symbols.x86ReturnThunk]);
}
