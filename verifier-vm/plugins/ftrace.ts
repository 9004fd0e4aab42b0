/**
 * ftrace: decides `text-patch` items of kind `ftrace` (and abstains on the others).
 *
 * Linux's dynamic ftrace (arch/x86/kernel/ftrace.c) toggles each `__mcount_loc` site between
 * the 5-byte NOP and `call <trampoline>`. An item is allowed when:
 *
 * 1. a manifest is loaded;
 * 2. the site is an exact `__mcount_loc` entry of the kernel (manifest) or of a verified
 *    module's core text (its init text is freed after its init, and its sites with it:
 *    module-end-state.ts keeps only the others);
 * 3. it is not in `.init.text` after the boot check passed (init text is freed by then);
 * 4. the patch is 5 bytes;
 * 5. the old bytes equal the bytes in memory (the core's snapshot);
 * 6. the new bytes are the 5-byte NOP or `e8 rel32` calling one of the manifest's
 *    `ftraceTrampolines`.
 *
 * Anything else is denied with a reason naming the site.
 */
import { NOP5, formatBytes } from '../../shared/x86/patch-encodings.ts';
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { ItemDecisions, type PluginContext, type VerifierPlugin } from '../plugin-api.ts';
import { KERNEL_OWNER, NO_MANIFEST, decideItems, findMcountSite, hex, ownerName, type ItemVerdict } from './patch-sites.ts';
import {
  DecisionSink,
  ItemView,
  RecordCursor,
  TextSink,
  newBytesAre,
  newRel32,
  oldMatchesMemory,
  relTarget,
  relTargetHi,
  relTargetLo,
  u64,
  type ItemSink,
  type PatchView,
} from './patch-view.ts';
import { SiteIndex } from './site-index.ts';

/** Length of an ftrace site (`call __fentry__` / NOP5). */
export const FTRACE_SITE_LEN = NOP5.length;

const FTRACE_CODE = PATCH_KIND.ftrace;
const OPCODE_CALL = 0xe8;

/**
 * Decides one ftrace item, reporting to `sink`. The one implementation of the rules above,
 * for protocol items and record batches alike.
 */
export function checkFtrace(v: PatchView, ctx: PluginContext, sink: ItemSink, index?: SiteIndex): void {
  const m = ctx.manifest;
  if (!m) return sink.deny(NO_MANIFEST);
  const idx = index ?? SiteIndex.of(m);
  // The kernel's sites first, by number (no bigint on the volume path), then the modules'.
  const kernel = idx.kernelMcountSite(v.siteLo, v.siteHi);
  const owner = kernel ? KERNEL_OWNER : findMcountSite(m, ctx, v.site);
  if (!owner) return sink.deny(`${hex(v.site)} is not an ftrace site (no __mcount_loc entry of the kernel or a verified module)`);
  if (kernel && ctx.vm.bootVerified && idx.inInitText(v)) {
    return sink.deny(`ftrace site ${hex(v.site)} is in .init.text, which is freed after boot`);
  }
  if (v.len !== FTRACE_SITE_LEN) {
    return sink.deny(`patch at ftrace site ${hex(v.site)} is ${v.len} bytes, not ${FTRACE_SITE_LEN}`);
  }
  if (!oldMatchesMemory(v)) {
    return sink.deny(`old bytes differ from memory at ${hex(v.site)} (old ${formatBytes(v.oldBytes())}, memory ${formatBytes(v.curBytes())})`);
  }
  if (newBytesAre(v, NOP5)) return sink.allowAround('ftrace site ', kernel ? KERNEL_NOP : ` (${ownerName(owner)}) -> NOP`);
  if (v.neu(0) === OPCODE_CALL) {
    relTarget(v, FTRACE_SITE_LEN, newRel32(v));
    const t = idx.trampolineAt(relTargetLo, relTargetHi);
    if (!t) return sink.deny(`ftrace site ${hex(v.site)}: call to ${hex(u64(relTargetLo, relTargetHi))}, which is not an ftrace trampoline`);
    return sink.allowAround('ftrace site ', kernel ? t.kernelCallSuffix : ` (${ownerName(owner)}) -> call ${t.name} (${t.hex})`);
  }
  return sink.deny(`ftrace site ${hex(v.site)}: new bytes ${formatBytes(v.newBytes())} are neither the 5-byte NOP nor a call to an ftrace trampoline`);
}

const KERNEL_NOP = ' (kernel) -> NOP';

/** Decides one ftrace item. Exported for tests and for plugins that wrap this policy. */
export function checkFtraceItem(item: PatchItem, ctx: PluginContext): ItemVerdict {
  const sink = new TextSink(item.site);
  checkFtrace(new ItemView(item), ctx, sink);
  return { decision: sink.decision, reason: sink.reason };
}

/** The ftrace plugin. */
export const ftracePlugin: VerifierPlugin<'text-patch'> = {
  name: 'ftrace',
  description: 'allows ftrace items that switch an __mcount_loc site between the 5-byte NOP and a call to a manifest ftrace trampoline',
  kinds: ['text-patch'],
  decide(request, ctx) {
    return decideItems(request, 'ftrace', (item) => checkFtraceItem(item, ctx));
  },
  decideRecords(batch, ctx) {
    // No ftrace item: every item abstains (no per-item answer needed).
    if (!batch.kindCounts[FTRACE_CODE]) return { decision: 'abstain', reason: 'ftrace: 0 allowed, 0 denied' };
    const out = new ItemDecisions(batch.records.count);
    const cursor = new RecordCursor(batch.records);
    const sink = new DecisionSink(out);
    const index = ctx.manifest ? SiteIndex.of(ctx.manifest) : undefined;
    for (let i = 0; i < out.count; i++) if (batch.records.kindCode(i) === FTRACE_CODE) checkFtrace(cursor.at(i), ctx, sink.at(i), index);
    return { decision: 'abstain', reason: `ftrace: ${out.allowed} allowed, ${out.denied} denied`, items: out };
  },
};
