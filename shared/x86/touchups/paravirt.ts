/**
 * `apply_paravirt()` of Linux 6.1.192 arch/x86/kernel/alternative.c with `paravirt_patch()`
 * of arch/x86/kernel/paravirt.c: each `.parainstructions` site becomes a direct `call` to
 * the function `pv_ops[type]` holds (a call to `paravirt_BUG` for a NULL op), or nothing
 * for `_paravirt_nop`, and the rest of the site NOPs. 6.1 has no native patch templates any
 * more (the "native" fast paths are ALTERNATIVEs on X86_FEATURE_XENPV, applied later by
 * apply_alternatives), so on bare metal and KVM this pass only turns the indirect calls
 * through pv_ops into direct ones.
 */
import type { TouchupContext } from './context.ts';
import { addNops } from './nops.ts';
import type { ParavirtSite } from './tables.ts';
import { type TextSpace, genRel32 } from './text-space.ts';

const CALL = 0xe8;

/** `apply_paravirt(start, end)`. */
export function applyParavirt(space: TextSpace, sites: readonly ParavirtSite[], ctx: TouchupContext): void {
  for (const p of sites) {
    const at = space.locate(p.addr, p.len);
    if (!at) continue;
    const op = ctx.symbols.pvOp(p.type);
    if (op === undefined) continue;
    const buf = Uint8Array.from(at.region.bytes.subarray(at.offset, at.offset + p.len));
    let used = 0;
    if (op === 0n) {
      if (ctx.symbols.paravirtBug === undefined) continue;
      buf.set(genRel32(CALL, p.addr, ctx.symbols.paravirtBug));
      used = 5;
    } else if (op !== ctx.symbols.paravirtNop) {
      buf.set(genRel32(CALL, p.addr, op));
      used = 5;
    }
    if (used > p.len) continue; // BUG_ON(used > p->len)
    addNops(buf, used, p.len - used);
    at.region.bytes.set(buf, at.offset);
  }
}
