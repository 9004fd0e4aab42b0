/**
 * ftrace: decides `text-patch` items of kind `ftrace` (and abstains on the others).
 *
 * Linux's dynamic ftrace (arch/x86/kernel/ftrace.c) toggles each `__mcount_loc` site between
 * the 5-byte NOP and `call <trampoline>`. An item is allowed when:
 *
 * 1. a manifest is loaded;
 * 2. the site is an exact `__mcount_loc` entry of the kernel (manifest) or of a verified module;
 * 3. it is not in `.init.text` after the boot check passed (init text is freed by then);
 * 4. the patch is 5 bytes;
 * 5. the old bytes equal the bytes in memory (the core's snapshot);
 * 6. the new bytes are the 5-byte NOP or `e8 rel32` calling one of the manifest's
 *    `ftraceTrampolines`.
 *
 * Anything else is denied with a reason naming the site.
 */
import { NOP5, bytesEqual, decodePatchInsn, formatBytes } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import type { PluginContext, VerifierPlugin } from '../plugin-api.ts';
import { NO_MANIFEST, allowItem, decideItems, denyItem, findMcountSite, hex, initTextAt, ownerName, type ItemVerdict } from './patch-sites.ts';

/** Length of an ftrace site (`call __fentry__` / NOP5). */
export const FTRACE_SITE_LEN = NOP5.length;

/** Decides one ftrace item. Exported for tests and for plugins that wrap this policy. */
export function checkFtraceItem(item: PatchItem, ctx: PluginContext): ItemVerdict {
  const m = ctx.manifest;
  if (!m) return denyItem(NO_MANIFEST);
  const site = item.site;
  const owner = findMcountSite(m, ctx, site);
  if (!owner) return denyItem(`${hex(site)} is not an ftrace site (no __mcount_loc entry of the kernel or a verified module)`);
  if (owner.kind === 'kernel' && ctx.vm.bootVerified && initTextAt(m, site)) {
    return denyItem(`ftrace site ${hex(site)} is in .init.text, which is freed after boot`);
  }
  if (item.newBytes.length !== FTRACE_SITE_LEN || item.oldBytes.length !== FTRACE_SITE_LEN) {
    return denyItem(`patch at ftrace site ${hex(site)} is ${item.newBytes.length} bytes, not ${FTRACE_SITE_LEN}`);
  }
  if (!bytesEqual(item.oldBytes, item.currentBytes)) {
    return denyItem(`old bytes differ from memory at ${hex(site)} (old ${formatBytes(item.oldBytes)}, memory ${formatBytes(item.currentBytes)})`);
  }
  const insn = decodePatchInsn(site, item.newBytes);
  if (insn.kind === 'nop5') return allowItem(`ftrace site ${hex(site)} (${ownerName(owner)}) -> NOP`);
  if (insn.kind === 'call32') {
    const name = m.ftraceTrampolines.get(insn.target);
    if (name === undefined) return denyItem(`ftrace site ${hex(site)}: call to ${hex(insn.target)}, which is not an ftrace trampoline`);
    return allowItem(`ftrace site ${hex(site)} (${ownerName(owner)}) -> call ${name} (${hex(insn.target)})`);
  }
  return denyItem(`ftrace site ${hex(site)}: new bytes ${formatBytes(item.newBytes)} are neither the 5-byte NOP nor a call to an ftrace trampoline`);
}

/** The ftrace plugin. */
export const ftracePlugin: VerifierPlugin<'text-patch'> = {
  name: 'ftrace',
  description: 'allows ftrace items that switch an __mcount_loc site between the 5-byte NOP and a call to a manifest ftrace trampoline',
  kinds: ['text-patch'],
  decide(request, ctx) {
    return decideItems(request, 'ftrace', (item) => checkFtraceItem(item, ctx));
  },
};
