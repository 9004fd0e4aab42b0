/**
 * x86-64 instruction decoding for the boot touch-ups, in the role of the kernel's
 * `insn_decode_kernel()` (arch/x86/lib/insn.c): the length of an instruction, its opcode
 * bytes and its relative immediate.
 *
 * Written by hand only for the forms every touch-up site has (`call`/`jmp rel32`, `Jcc
 * rel32`, `ret`, `int3`, single-byte NOP); everything else goes to iced-x86, the well-kept
 * full decoder (Rust compiled to WebAssembly), because `optimize_nops()` walks arbitrary
 * instructions of alternative sites and a hand-written length decoder for all of x86-64 is
 * exactly what a library should do. A byte sequence that does not decode gives `undefined`,
 * as `insn_decode_kernel()` returns an error.
 */
import iced from 'iced-x86';

const { Decoder, DecoderOptions, Code } = iced;

/** One decoded instruction: enough of `struct insn` for the touch-ups. */
export interface Insn {
  /** Bytes. */
  readonly length: number;
  /** The first opcode byte after prefixes (`insn.opcode.bytes[0]`). */
  readonly op1: number;
  /** The second opcode byte, for 0x0f escapes (`insn.opcode.bytes[1]`), else 0. */
  readonly op2: number;
  /** The immediate of a relative branch (`insn.immediate.value`), else 0. */
  readonly rel: number;
  /** Prefix bytes before the opcode. */
  readonly prefixes: number;
}

const LEGACY_PREFIXES = new Set([0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3]);

function readS32(b: Uint8Array, at: number): number {
  return b[at]! | (b[at + 1]! << 8) | (b[at + 2]! << 16) | (b[at + 3]! << 24) | 0;
}

/**
 * Decodes the instruction at `bytes[at]` (up to 15 bytes are read, fewer at the end of the
 * buffer); `undefined` when it is not a valid instruction.
 */
export function decodeInsn(bytes: Uint8Array, at: number): Insn | undefined {
  let p = at;
  while (p < bytes.length && p - at < 14 && LEGACY_PREFIXES.has(bytes[p]!)) p++;
  const prefixes = p - at;
  const b0 = bytes[p];
  if (b0 === undefined) return undefined;
  if (prefixes === 0 || (prefixes === 1 && bytes[at] === 0x2e)) {
    // The forms of call, jmp, Jcc, ret, int3 and nop that touch-up sites hold.
    if ((b0 === 0xe8 || b0 === 0xe9) && p + 5 <= bytes.length) return { length: prefixes + 5, op1: b0, op2: 0, rel: readS32(bytes, p + 1), prefixes };
    if (b0 === 0x0f && p + 6 <= bytes.length && (bytes[p + 1]! & 0xf0) === 0x80)
      return { length: prefixes + 6, op1: 0x0f, op2: bytes[p + 1]!, rel: readS32(bytes, p + 2), prefixes };
    if (prefixes === 0 && (b0 === 0xc3 || b0 === 0xcc || b0 === 0x90)) return { length: 1, op1: b0, op2: 0, rel: 0, prefixes: 0 };
    if (prefixes === 0 && b0 === 0xeb && p + 2 <= bytes.length) return { length: 2, op1: b0, op2: 0, rel: (bytes[p + 1]! << 24) >> 24, prefixes: 0 };
  }
  return decodeWithIced(bytes, at);
}

function decodeWithIced(bytes: Uint8Array, at: number): Insn | undefined {
  const window = bytes.subarray(at, Math.min(bytes.length, at + 15));
  const decoder = new Decoder(64, window, DecoderOptions.None);
  try {
    const insn = decoder.decode();
    try {
      if (insn.code === Code.INVALID) return undefined;
      const length = insn.length;
      let p = 0;
      // REX and legacy prefixes precede the opcode; VEX/EVEX/XOP instructions are never
      // touch-up sites, so their "opcode" here only has to be something other than 0x90.
      while (p < length - 1 && (LEGACY_PREFIXES.has(window[p]!) || (window[p]! & 0xf0) === 0x40)) p++;
      const op1 = window[p]!;
      const op2 = op1 === 0x0f ? window[p + 1]! : 0;
      return { length, op1, op2, rel: 0, prefixes: p };
    } finally {
      insn.free();
    }
  } finally {
    decoder.free();
  }
}
