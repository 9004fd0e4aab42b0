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
import { NOP2, NOP5, formatBytes } from '../../shared/x86/patch-encodings.ts';
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { notePatch } from '../end-state/key-state.ts';
import { ItemDecisions, type PluginContext, type VerifierPlugin } from '../plugin-api.ts';
import { NO_MANIFEST, decideItems, findJumpEntry, hex, ownerName, type ItemVerdict } from './patch-sites.ts';
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

const JUMP_LABEL_CODE = PATCH_KIND['jump-label'];
const OPCODE_JMP8 = 0xeb;
const OPCODE_JMP32 = 0xe9;

/**
 * Decides one jump-label item, reporting to `sink`: the one implementation of the rules
 * above, for protocol items and record batches alike.
 */
export function checkJumpLabel(v: PatchView, ctx: PluginContext, sink: ItemSink): void {
  const m = ctx.manifest;
  if (!m) return sink.deny(NO_MANIFEST);
  const site = v.site;
  const entry = findJumpEntry(m, ctx, site);
  if (!entry) return sink.deny(`${hex(site)} is not a jump-label site (no __jump_table entry of the kernel or a verified module)`);
  if (entry.owner.kind === 'kernel' && ctx.vm.bootVerified && SiteIndex.of(m).inInitText(v)) {
    return sink.deny(`jump-label site ${hex(site)} is in .init.text, which is freed after boot`);
  }
  if (v.len !== entry.len) {
    return sink.deny(`patch at jump-label site ${hex(site)} is ${v.len} bytes, the site is ${entry.len}`);
  }
  if (!oldMatchesMemory(v)) {
    return sink.deny(`old bytes differ from memory at ${hex(site)} (old ${formatBytes(v.oldBytes())}, memory ${formatBytes(v.curBytes())})`);
  }
  const owner = ownerName(entry.owner);
  if (newBytesAre(v, entry.len === 2 ? NOP2 : NOP5)) return sink.allowAround('jump-label site ', ` (${owner}) -> NOP${entry.len}`);
  const b0 = v.neu(0);
  if (entry.len === 2 ? b0 === OPCODE_JMP8 : b0 === OPCODE_JMP32) {
    const rel = entry.len === 2 ? (v.neu(1) << 24) >> 24 : newRel32(v);
    relTarget(v, entry.len, rel);
    const target = u64(relTargetLo, relTargetHi);
    if (target !== entry.target)
      return sink.deny(`jump-label site ${hex(site)}: jump to foreign target ${hex(target)} (the entry's target is ${hex(entry.target)})`);
    return sink.allow(`jump-label site ${hex(site)} (${owner}) -> jmp ${hex(entry.target)}`);
  }
  return sink.deny(
    `jump-label site ${hex(site)}: new bytes ${formatBytes(v.newBytes())} are neither NOP${entry.len} nor ${entry.len === 2 ? 'eb rel8' : 'e9 rel32'} to the entry's target`,
  );
}

/** Decides one jump-label item. Exported for tests and for plugins that wrap this policy. */
export function checkJumpLabelItem(item: PatchItem, ctx: PluginContext): ItemVerdict {
  const sink = new TextSink(item.site);
  checkJumpLabel(new ItemView(item), ctx, sink);
  return { decision: sink.decision, reason: sink.reason };
}

/** The jump-label plugin. */
export const jumpLabelPlugin: VerifierPlugin<'text-patch'> = {
  name: 'jump-label',
  description: "allows jump-label items that switch a __jump_table site between its NOP and the jump to the entry's own target",
  kinds: ['text-patch'],
  decide(request, ctx) {
    return decideItems(request, 'jump-label', (item) => checkJumpLabelItem(item, ctx));
  },
  decideRecords(batch, ctx) {
    // No jump-label item: every item abstains (no per-item answer needed).
    if (!batch.kindCounts[JUMP_LABEL_CODE]) return { decision: 'abstain', reason: 'jump-label: 0 allowed, 0 denied' };
    const out = new ItemDecisions(batch.records.count);
    const cursor = new RecordCursor(batch.records);
    const sink = new DecisionSink(out);
    for (let i = 0; i < out.count; i++) if (batch.records.kindCode(i) === JUMP_LABEL_CODE) checkJumpLabel(cursor.at(i), ctx, sink.at(i));
    return { decision: 'abstain', reason: `jump-label: ${out.allowed} allowed, ${out.denied} denied`, items: out };
  },
  commit(request, ok, ctx) {
    if (ok && ctx.manifest) for (const item of request.items) if (item.kind === 'jump-label') notePatch(ctx, ctx.manifest, item.kind, item.site, item.newBytes);
  },
  commitRecords(batch, ok, ctx) {
    // Only a batch with jump-label items moves a key; leave the others in record form.
    if (ok && batch.kindCounts[JUMP_LABEL_CODE]) jumpLabelPlugin.commit!(batch.request, ok, ctx);
  },
};
