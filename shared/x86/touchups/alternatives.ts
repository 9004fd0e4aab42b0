/**
 * `apply_alternatives()` of Linux 6.1.192 arch/x86/kernel/alternative.c, with
 * `optimize_nops()` and `recompute_jump()`: for every `.altinstructions` entry in table
 * order (a later entry may overwrite an earlier one), when the feature test passes
 * (`boot_cpu_has(feature)`, inverted by ALTINSTR_FLAG_INV) the replacement is copied over
 * the original, a 5-byte `call` gets its displacement moved to the new address, a `jmp` is
 * re-encoded for the new address (2 bytes plus a 3-byte NOP when the target fits in rel8),
 * the rest is filled with 0x90; then, patched or not, runs of single-byte NOPs in the site
 * become long NOPs.
 */
import { NCAPINTS, cpuHas } from '../cpu-model.ts';
import type { TouchupContext } from './context.ts';
import { decodeInsn } from './insn.ts';
import { addNops } from './nops.ts';
import type { AltInstr } from './tables.ts';
import { type TextSpace, readS32, writeS32 } from './text-space.ts';

/** ALTINSTR_FLAG_INV: patch when the feature is absent. */
export const ALTINSTR_FLAG_INV = 1 << 15;
/** MAX_PATCH_LEN. */
const MAX_PATCH_LEN = 255 - 1;

/** `optimize_nops_range(instr, len, off)`. */
function optimizeNopsRange(buf: Uint8Array, base: number, len: number, off: number): number {
  let i = off;
  while (i < len && buf[base + i] === 0x90) i++;
  const nnops = i - off;
  if (nnops <= 1) return nnops;
  addNops(buf, base + off, nnops);
  return nnops;
}

/** `optimize_nops(instr, len)` over `buf[base .. base + len)`. */
export function optimizeNops(buf: Uint8Array, base: number, len: number): void {
  let i = 0;
  for (;;) {
    const insn = decodeInsn(buf, base + i);
    if (!insn) return;
    if (insn.length === 1 && insn.op1 === 0x90) i += optimizeNopsRange(buf, base, len, i);
    else i += insn.length;
    if (i >= len) return;
  }
}

/** `recompute_jump(a, orig_insn, repl_insn, insn_buff)`. */
function recomputeJump(a: AltInstr, buf: Uint8Array): void {
  if (a.replacementlen !== 5) return;
  const oDspl = readS32(buf, 1);
  const nextRip = a.repl + BigInt(a.replacementlen);
  const tgtRip = nextRip + BigInt(oDspl);
  const diff = tgtRip - a.instr;
  let nDspl = Number(BigInt.asIntN(32, diff));
  const twoByte = diff >= 0n ? nDspl - 2 <= 127 : ((nDspl - 2) & 0xff) === nDspl - 2;
  if (twoByte) {
    nDspl -= 2;
    buf[0] = 0xeb;
    buf[1] = nDspl & 0xff;
    addNops(buf, 2, 3);
  } else {
    nDspl -= 5;
    buf[0] = 0xe9;
    writeS32(buf, 1, nDspl | 0);
  }
}

/** Whether `.altinstructions` entry `a` is applied on this CPU. */
export function alternativeApplies(ctx: TouchupContext, a: AltInstr): boolean {
  const feature = a.cpuid & ~ALTINSTR_FLAG_INV;
  return cpuHas(ctx.cpu, feature) !== ((a.cpuid & ALTINSTR_FLAG_INV) !== 0);
}

/** `apply_alternatives(start, end)`. Entries whose site or replacement is outside `space` are skipped. */
export function applyAlternatives(space: TextSpace, entries: readonly AltInstr[], ctx: TouchupContext): void {
  const buf = new Uint8Array(MAX_PATCH_LEN + 16);
  for (const a of entries) {
    const at = space.locate(a.instr, a.instrlen);
    if (!at) continue;
    const feature = a.cpuid & ~ALTINSTR_FLAG_INV;
    if (a.instrlen > MAX_PATCH_LEN || feature >= (NCAPINTS + 2) * 32) continue; // BUG_ON
    if (alternativeApplies(ctx, a)) {
      const repl = a.replacementlen === 0 ? new Uint8Array(0) : space.view(a.repl, a.replacementlen);
      if (repl) {
        buf.fill(0);
        buf.set(repl, 0);
        let size = a.replacementlen;
        if (a.replacementlen === 5 && buf[0] === 0xe8) writeS32(buf, 1, (readS32(buf, 1) + Number(BigInt.asIntN(32, a.repl - a.instr))) | 0);
        if (a.replacementlen && (repl[0] === 0xeb || repl[0] === 0xe9)) recomputeJump(a, buf);
        for (; size < a.instrlen; size++) buf[size] = 0x90;
        at.region.bytes.set(buf.subarray(0, size), at.offset);
      }
    }
    optimizeNops(at.region.bytes, at.offset, a.instrlen);
  }
}
