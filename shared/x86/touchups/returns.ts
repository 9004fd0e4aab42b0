/**
 * Retpolines and return thunks: `apply_retpolines()` and `apply_returns()` of Linux 6.1.192
 * arch/x86/kernel/alternative.c, with `patch_retpoline()`, `patch_return()`,
 * `cpu_wants_rethunk_at()` and `__static_call_fixup()` (arch/x86/kernel/static_call.c).
 *
 * Not modelled: ITS indirect thunks (`X86_FEATURE_INDIRECT_THUNK_ITS` without RETPOLINE,
 * which allocates thunk pages at patch time); a model with that feature is refused by
 * {@link unsupportedTouchupFeature}.
 */
import { X86_FEATURE } from '../cpu-model.ts';
import { type TouchupContext, cpuWantsRethunkAt, has } from './context.ts';
import { decodeInsn } from './insn.ts';
import { INT3, RET } from './nops.ts';
import { optimizeNops } from './alternatives.ts';
import { type Located, type TextRegion, type TextSpace, genRel32 } from './text-space.ts';
import type { TouchupTables } from './tables.ts';
import { staticCallTransform } from './static-call-init.ts';

const CALL = 0xe8;
const JMP32 = 0xe9;
/** `RETPOLINE_THUNK_SIZE`: each `__x86_indirect_thunk_<reg>` is 32 bytes. */
const RETPOLINE_THUNK_SIZE = 32n;
/** `tramp_ud`: the `ud1 %esp, %ecx` after a static call trampoline's jump. */
const TRAMP_UD = [0x0f, 0xb9, 0xcc] as const;

/** `emit_indirect(op, reg, bytes)`: `call/jmp *%reg`. */
function emitIndirect(op: number, reg: number, out: number[]): void {
  let modrm = op === CALL ? 0x10 : 0x20;
  let r = reg;
  if (r >= 8) {
    out.push(0x41);
    r -= 8;
  }
  modrm |= 0xc0;
  modrm += r;
  out.push(0xff, modrm);
}

/** `patch_retpoline()`: the replacement bytes, or undefined when the site stays (return -1). */
function patchRetpoline(ctx: TouchupContext, addr: bigint, length: number, op1: number, op2: number, rel: number): Uint8Array | undefined {
  const target = addr + BigInt(length) + BigInt(rel);
  const delta = target - ctx.symbols.indirectThunkArray;
  if (delta < 0n || delta % RETPOLINE_THUNK_SIZE !== 0n || delta / RETPOLINE_THUNK_SIZE > 15n) return undefined; // WARN_ON_ONCE(reg & ~0xf)
  const reg = Number(delta / RETPOLINE_THUNK_SIZE);
  if (reg === 4) return undefined; // BUG_ON(reg == 4)
  if (has(ctx, X86_FEATURE.RETPOLINE) && !has(ctx, X86_FEATURE.RETPOLINE_LFENCE)) return undefined;
  const bytes: number[] = [];
  let op = op1;
  if (op1 === 0x0f && (op2 & 0xf0) === 0x80) {
    const cc = (op2 & 0xf) ^ 1;
    bytes.push(0x70 + cc, length - 2);
    op = JMP32;
  }
  if (has(ctx, X86_FEATURE.RETPOLINE_LFENCE)) bytes.push(0x0f, 0xae, 0xe8);
  emitIndirect(op, reg, bytes);
  if (op === JMP32 && bytes.length < length) bytes.push(INT3);
  while (bytes.length < length) bytes.push(0x90);
  return bytes.length === length ? Uint8Array.from(bytes) : undefined;
}

/** `apply_retpolines(start, end)`. */
export function applyRetpolines(space: TextSpace, sites: TouchupTables['retpolines'], ctx: TouchupContext): void {
  for (const addr of sites) {
    const at = space.locate(addr);
    if (!at) continue;
    const insn = decodeInsn(at.region.bytes, at.offset);
    if (!insn) continue; // WARN_ON_ONCE(ret < 0)
    const isJcc = insn.op1 === 0x0f && insn.op2 >= 0x80 && insn.op2 <= 0x8f;
    if (insn.op1 !== CALL && insn.op1 !== JMP32 && !isJcc) continue; // WARN_ON_ONCE(1)
    const bytes = patchRetpoline(ctx, addr, insn.length, insn.op1, insn.op2, insn.rel);
    if (!bytes) continue;
    optimizeNops(bytes, 0, bytes.length);
    space.write(addr, bytes);
  }
}

/**
 * `__static_call_fixup(tramp, op, dest)`: true when `addr` (at `at`) is a static call
 * trampoline (handled). `toReturnThunk`: the instruction is `jmp __x86_return_thunk`.
 */
function staticCallFixup(space: TextSpace, ctx: TouchupContext, addr: bigint, at: Located, op: number, toReturnThunk: boolean): boolean {
  // addr and addr + 7 on different pages exactly when addr's page offset is at least 4096 - 7.
  if ((addr & 0xfffn) >= 0xff9n && !ctx.symbols.isKernelText(addr + 7n)) return false;
  // The three bytes after the jump, read in the site's region when they are in it (regions do not overlap).
  const inRegion = at.offset + 8 <= at.region.bytes.length;
  const ud = inRegion ? at.region.bytes : space.view(addr + 5n, 3);
  const o = inRegion ? at.offset + 5 : 0;
  if (!ud || ud[o] !== TRAMP_UD[0] || ud[o + 1] !== TRAMP_UD[1] || ud[o + 2] !== TRAMP_UD[2]) return false;
  if (op === RET || toReturnThunk) staticCallTransform(space, ctx, addr, 'ret', null);
  return true;
}

/** `__x86_return_thunk`'s offset from `region`'s start, NaN when it is not a safe integer (then no site there reaches it). */
function thunkOffset(ctx: TouchupContext, region: TextRegion): number {
  const d = ctx.symbols.returnThunk - region.base;
  return d >= -MAX_SAFE && d <= MAX_SAFE ? Number(d) : NaN;
}
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

/** `apply_returns(start, end)`. */
export function applyReturns(space: TextSpace, sites: TouchupTables['returns'], ctx: TouchupContext): void {
  let region: TextRegion | undefined;
  let thunk = NaN;
  for (const addr of sites) {
    const at = space.locate(addr);
    if (!at) continue;
    if (at.region !== region) {
      region = at.region;
      thunk = thunkOffset(ctx, region);
    }
    const insn = decodeInsn(at.region.bytes, at.offset);
    if (!insn) continue;
    // dest = addr + length + rel, compared in offsets from the region's start (exact: all are safe integers).
    const toReturnThunk = insn.op1 === JMP32 && at.offset + insn.length + insn.rel === thunk;
    if (staticCallFixup(space, ctx, addr, at, insn.op1, toReturnThunk) || !toReturnThunk) continue;
    const bytes = new Uint8Array(insn.length);
    let i = 0;
    if (cpuWantsRethunkAt(ctx, addr)) {
      bytes.set(genRel32(JMP32, addr, ctx.symbols.x86ReturnThunk));
      i = 5;
    } else bytes[i++] = RET;
    for (; i < insn.length; i++) bytes[i] = INT3;
    // decodeInsn read the instruction inside the region: it is written there (text_poke_early).
    at.region.bytes.set(bytes, at.offset);
  }
}

/** A feature of the model these passes do not model, with why; undefined when all are modelled. */
export function unsupportedTouchupFeature(ctx: TouchupContext): string | undefined {
  if (has(ctx, X86_FEATURE.INDIRECT_THUNK_ITS)) return 'X86_FEATURE_INDIRECT_THUNK_ITS (ITS indirect thunks allocated at patch time) is not modelled';
  return undefined;
}
