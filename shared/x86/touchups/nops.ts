/**
 * The x86-64 NOPs Linux 6.1 pads patched code with: `x86_nops[]` of
 * arch/x86/kernel/alternative.c over the 64-bit `BYTES_NOP1..8` of
 * arch/x86/include/asm/nops.h (the "P6" long NOPs, `0f 1f /0` with growing ModRM forms),
 * and `add_nops()`, which fills a run with the longest NOPs first (ASM_NOP_MAX = 8).
 */

/** `BYTES_NOP1` .. `BYTES_NOP8` (index = length). */
export const X86_NOPS: readonly (readonly number[])[] = Object.freeze([
  [],
  [0x90],
  [0x66, 0x90],
  [0x0f, 0x1f, 0x00],
  [0x0f, 0x1f, 0x40, 0x00],
  [0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
  [0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
  [0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
]);

/** ASM_NOP_MAX. */
export const ASM_NOP_MAX = 8;
/** `int3`, the padding after a `ret` or an indirect `jmp` (INT3_INSN_OPCODE). */
export const INT3 = 0xcc;
/** `ret` (RET_INSN_OPCODE). */
export const RET = 0xc3;

/** `add_nops(insns, len)`: writes `len` bytes of NOPs at `buf[at..]`, eight-byte ones first. */
export function addNops(buf: Uint8Array, at: number, len: number): void {
  let p = at;
  let left = len;
  while (left > 0) {
    const n = left > ASM_NOP_MAX ? ASM_NOP_MAX : left;
    const nop = X86_NOPS[n]!;
    for (let i = 0; i < n; i++) buf[p + i] = nop[i]!;
    p += n;
    left -= n;
  }
}
