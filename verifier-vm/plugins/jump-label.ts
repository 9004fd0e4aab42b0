/**
 * jump-label: decides `text-patch` items of kind `jump-label` (and abstains on the others).
 *
 * A static key flips each of its `__jump_table` sites between a NOP and a jump to the
 * entry's own target (arch/x86/kernel/jump_label.c: `66 90` <-> `eb rel8` for 2-byte sites,
 * `0f 1f 44 00 00` <-> `e9 rel32` for 5-byte ones). An item is allowed when:
 *
 * 1. a manifest is loaded;
 * 2. the site is an exact jump-entry site of the kernel (manifest) or of a verified module;
 * 3. it is not in `.init.text` after the boot check passed;
 * 4. the patch length equals the entry's length (2 or 5);
 * 5. the old bytes equal the bytes in memory;
 * 6. the new bytes are the NOP of that length or the jump of that length to the entry's
 *    target. A jump anywhere else is a "jump to foreign target".
 */
import { bytesEqual, decodePatchInsn, formatBytes } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import type { PluginContext, VerifierPlugin } from '../plugin-api.ts';
import { NO_MANIFEST, allowItem, decideItems, denyItem, findJumpEntry, hex, initTextAt, ownerName, type ItemVerdict } from './patch-sites.ts';

/** Decides one jump-label item. Exported for tests and for plugins that wrap this policy. */
export function checkJumpLabelItem(item: PatchItem, ctx: PluginContext): ItemVerdict {
  const m = ctx.manifest;
  if (!m) return denyItem(NO_MANIFEST);
  const site = item.site;
  const entry = findJumpEntry(m, ctx, site);
  if (!entry) return denyItem(`${hex(site)} is not a jump-label site (no __jump_table entry of the kernel or a verified module)`);
  if (entry.owner.kind === 'kernel' && ctx.vm.bootVerified && initTextAt(m, site)) {
    return denyItem(`jump-label site ${hex(site)} is in .init.text, which is freed after boot`);
  }
  if (item.newBytes.length !== entry.len || item.oldBytes.length !== entry.len) {
    return denyItem(`patch at jump-label site ${hex(site)} is ${item.newBytes.length} bytes, the site is ${entry.len}`);
  }
  if (!bytesEqual(item.oldBytes, item.currentBytes)) {
    return denyItem(`old bytes differ from memory at ${hex(site)} (old ${formatBytes(item.oldBytes)}, memory ${formatBytes(item.currentBytes)})`);
  }
  const insn = decodePatchInsn(site, item.newBytes);
  const nop = entry.len === 2 ? 'nop2' : 'nop5';
  const jmp = entry.len === 2 ? 'jmp8' : 'jmp32';
  const where = `jump-label site ${hex(site)} (${ownerName(entry.owner)})`;
  if (insn.kind === nop) return allowItem(`${where} -> NOP${entry.len}`);
  if (insn.kind === jmp) {
    if (insn.target !== entry.target) return denyItem(`jump-label site ${hex(site)}: jump to foreign target ${hex(insn.target)} (the entry's target is ${hex(entry.target)})`);
    return allowItem(`${where} -> jmp ${hex(entry.target)}`);
  }
  return denyItem(
    `jump-label site ${hex(site)}: new bytes ${formatBytes(item.newBytes)} are neither NOP${entry.len} nor ${entry.len === 2 ? 'eb rel8' : 'e9 rel32'} to the entry's target`,
  );
}

/** The jump-label plugin. */
export const jumpLabelPlugin: VerifierPlugin<'text-patch'> = {
  name: 'jump-label',
  description: "allows jump-label items that switch a __jump_table site between its NOP and the jump to the entry's own target",
  kinds: ['text-patch'],
  decide(request, ctx) {
    return decideItems(request, 'jump-label', (item) => checkJumpLabelItem(item, ctx));
  },
};
