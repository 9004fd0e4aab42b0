/**
 * The x86-64 instructions the kernel writes into its own text at run time, as the guest
 * (which writes them) and the verifier (which checks them) must agree on them.
 *
 * - ftrace (arch/x86/kernel/ftrace.c): a 5-byte NOP <-> `e8 rel32`, a call to a trampoline.
 * - jump labels (arch/x86/kernel/jump_label.c): a 2-byte NOP <-> `eb rel8`, or a 5-byte NOP
 *   <-> `e9 rel32`, a jump to the entry's target.
 * - kprobes (arch/x86/kernel/kprobes/core.c): the first byte of an instruction <-> `cc`
 *   (int3).
 * - static calls (arch/x86/kernel/static_call.c, `__static_call_transform()` in 6.1): a call
 *   site holds `e8 rel32` to the function, NOP5 for NULL, or `2e 2e 2e 31 c0` for
 *   `__static_call_return0`; a tail-call site and the trampoline hold `e9 rel32` to the
 *   function, or for NULL a return: `e9 rel32` to `__x86_return_thunk` (X86_FEATURE_RETHUNK)
 *   or `c3 cc cc cc cc`.
 *
 * The NOPs are Linux's `x86_nops[5]` (`BYTES_NOP5`, `0f 1f 44 00 00`, arch/x86/include/asm/nops.h)
 * and `x86_nops[2]` (`BYTES_NOP2`, `66 90`). A relative operand is `target - (site + len)`:
 * x86 takes a rel from the address of the next instruction. Addresses are u64 bigints and
 * wrap modulo 2^64, as the CPU's RIP arithmetic does.
 */

/** `nopl 0x0(%rax,%rax,1)`, Linux's BYTES_NOP5. */
export const NOP5: Readonly<Uint8Array> = Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00);
/** `xchg %ax,%ax` (`66 90`), Linux's BYTES_NOP2. */
export const NOP2: Readonly<Uint8Array> = Uint8Array.of(0x66, 0x90);
/** `int3`, the kprobe breakpoint. */
export const INT3 = 0xcc;
/** Opcode of `call rel32`. */
export const OPCODE_CALL_REL32 = 0xe8;
/** Opcode of `jmp rel32`. */
export const OPCODE_JMP_REL32 = 0xe9;
/** Opcode of `jmp rel8`. */
export const OPCODE_JMP_REL8 = 0xeb;

/** `cs cs cs xorl %eax, %eax`: one 5-byte instruction, what a static call to `__static_call_return0` becomes. */
export const XOR5RAX: Readonly<Uint8Array> = Uint8Array.of(0x2e, 0x2e, 0x2e, 0x31, 0xc0);
/** `ret; int3 x4`: a NULL tail-call site or trampoline without the return thunk (`retinsn`). */
export const RET5: Readonly<Uint8Array> = Uint8Array.of(0xc3, 0xcc, 0xcc, 0xcc, 0xcc);

const MASK64 = (1n << 64n) - 1n;

/** A decoded patch-site instruction. */
export type PatchInsn =
  | { readonly kind: 'nop5' }
  | { readonly kind: 'nop2' }
  | { readonly kind: 'int3' }
  /** `e8 rel32`; `target` = site + 5 + rel32 (mod 2^64). */
  | { readonly kind: 'call32'; readonly target: bigint }
  /** `e9 rel32`; `target` = site + 5 + rel32 (mod 2^64). */
  | { readonly kind: 'jmp32'; readonly target: bigint }
  /** `eb rel8`; `target` = site + 2 + rel8 (mod 2^64). */
  | { readonly kind: 'jmp8'; readonly target: bigint }
  /** Anything else (including a known opcode at the wrong length). */
  | { readonly kind: 'other' };

/**
 * The relative operand from `site` (instruction of `len` bytes) to `target`, as a signed
 * 64-bit value: `target - (site + len)`, wrapped to the u64 address space.
 */
export function relOperand(site: bigint, len: number, target: bigint): bigint {
  return BigInt.asIntN(64, (target - (site + BigInt(len))) & MASK64);
}

/** Does the rel from `site` (an instruction of `len` bytes) to `target` fit `bits` signed bits? */
export function relFits(site: bigint, len: number, target: bigint, bits: 8 | 32): boolean {
  const rel = relOperand(site, len, target);
  const lim = 1n << BigInt(bits - 1);
  return rel >= -lim && rel < lim;
}

function rel32Insn(opcode: number, site: bigint, target: bigint, what: string): Uint8Array {
  if (!relFits(site, 5, target, 32)) {
    throw new RangeError(`${what} from 0x${site.toString(16)} to 0x${target.toString(16)} does not fit rel32`);
  }
  const out = new Uint8Array(5);
  out[0] = opcode;
  new DataView(out.buffer).setInt32(1, Number(relOperand(site, 5, target)), true);
  return out;
}

/**
 * `e8 rel32` at `site` calling `target`. Throws RangeError when the target is more than
 * ±2 GiB away: encoding such a call is a caller bug (kernel text and its trampolines always
 * lie within rel32 reach of each other), not input to tolerate.
 */
export function encodeCall32(site: bigint, target: bigint): Uint8Array {
  return rel32Insn(OPCODE_CALL_REL32, site, target, 'call');
}

/** `e9 rel32` at `site` jumping to `target`. Throws RangeError when out of rel32 reach. */
export function encodeJmp32(site: bigint, target: bigint): Uint8Array {
  return rel32Insn(OPCODE_JMP_REL32, site, target, 'jmp');
}

/** `eb rel8` at `site` jumping to `target`. Throws RangeError when out of rel8 reach (-128..127). */
export function encodeJmp8(site: bigint, target: bigint): Uint8Array {
  if (!relFits(site, 2, target, 8)) {
    throw new RangeError(`jmp8 from 0x${site.toString(16)} to 0x${target.toString(16)} does not fit rel8`);
  }
  return Uint8Array.of(OPCODE_JMP_REL8, Number(relOperand(site, 2, target)) & 0xff);
}

/**
 * The jump-label instruction of length `len` at `site`: the NOP when disabled, the jump to
 * `target` when enabled (`eb rel8` for 2 bytes, `e9 rel32` for 5). Throws RangeError when
 * the jump does not reach (see {@link encodeJmp8}).
 */
export function encodeJumpLabel(site: bigint, len: 2 | 5, target: bigint, enabled: boolean): Uint8Array {
  if (!enabled) return Uint8Array.from(len === 2 ? NOP2 : NOP5);
  return len === 2 ? encodeJmp8(site, target) : encodeJmp32(site, target);
}

/** Where a static-call instruction sits: a call site, a tail-call site, or the key's trampoline. */
export type StaticCallRole = 'call' | 'tail' | 'trampoline';

/** Addresses a static-call encoding depends on. */
export interface StaticCallSymbols {
  /** `__static_call_return0`: a call to it becomes {@link XOR5RAX}. */
  readonly return0?: bigint;
  /**
   * The return thunk a NULL tail site or trampoline jumps to (`x86_return_thunk`); without it
   * they get {@link RET5}.
   */
  readonly returnThunk?: bigint;
  /**
   * `cpu_wants_rethunk_at(site)` (arch/x86/kernel/alternative.c): whether the kernel writes the
   * jump to {@link returnThunk} at `site` rather than {@link RET5}; absent means always.
   */
  readonly rethunkAt?: (site: bigint) => boolean;
}

/**
 * The 5 bytes `static_call_update()` writes at a static-call instruction of `role` for
 * function `func` (null: the NULL function), as 6.1's `__static_call_transform()` does. Throws
 * RangeError when `func` is out of rel32 reach (see {@link encodeCall32}).
 */
export function encodeStaticCall(site: bigint, role: StaticCallRole, func: bigint | null, symbols: StaticCallSymbols = {}): Uint8Array {
  if (role === 'call') {
    if (func === null) return Uint8Array.from(NOP5);
    if (symbols.return0 !== undefined && func === symbols.return0) return Uint8Array.from(XOR5RAX);
    return encodeCall32(site, func);
  }
  if (func !== null) return encodeJmp32(site, func);
  const thunk = symbols.returnThunk !== undefined && (symbols.rethunkAt?.(site) ?? true);
  return thunk ? encodeJmp32(site, symbols.returnThunk!) : Uint8Array.from(RET5);
}

/**
 * Decodes `bytes` placed at `site` as one patch-site instruction. The whole of `bytes` must
 * be that instruction: 5 bytes for nop5/call32/jmp32, 2 for nop2/jmp8, 1 for int3; anything
 * else is `other`. Never throws.
 */
export function decodePatchInsn(site: bigint, bytes: Uint8Array): PatchInsn {
  const b0 = bytes[0];
  switch (bytes.length) {
    case 1:
      return b0 === INT3 ? { kind: 'int3' } : { kind: 'other' };
    case 2:
      if (bytesEqual(bytes, NOP2)) return { kind: 'nop2' };
      if (b0 === OPCODE_JMP_REL8) return { kind: 'jmp8', target: (site + 2n + BigInt((bytes[1]! << 24) >> 24)) & MASK64 };
      return { kind: 'other' };
    case 5: {
      if (bytesEqual(bytes, NOP5)) return { kind: 'nop5' };
      if (b0 !== OPCODE_CALL_REL32 && b0 !== OPCODE_JMP_REL32) return { kind: 'other' };
      const rel = new DataView(bytes.buffer, bytes.byteOffset + 1, 4).getInt32(0, true);
      const target = (site + 5n + BigInt(rel)) & MASK64;
      return b0 === OPCODE_CALL_REL32 ? { kind: 'call32', target } : { kind: 'jmp32', target };
    }
    default:
      return { kind: 'other' };
  }
}

/** Byte-wise equality. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `0f 1f 44 00 00`-style text for messages. */
export function formatBytes(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(' ');
}
