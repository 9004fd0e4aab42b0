/**
 * smp-lock: decides `text-patch` items of kind `smp-lock` (and abstains on the others): the
 * guest restoring its `lock` prefixes when a second CPU comes online, as
 * alternatives_enable_smp() does (arch/x86/kernel/alternative.c: every `.smp_locks` prefix
 * of the core kernel and of each loaded module within its text whose byte is the DS override
 * `3e` becomes `f0`, through text_poke). An item is allowed when:
 *
 * 1. a manifest is loaded;
 * 2. the site is a `.smp_locks` entry of the kernel (signed manifest) or of a verified module;
 * 3. the VMM has brought a second CPU online (`ctx.vm.onlineCpus` > 1: TRUST, the count
 *    comes from the VMM's control plane, never from the guest);
 * 4. the patch is one byte, the old byte equals memory and is `3e`, the new byte is `f0`.
 *
 * Nothing else may write a lock-prefix site: the reverse (`f0` -> `3e`, stripping a lock on
 * an SMP guest) is denied, as is any byte other than those two.
 */
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { DS_PREFIX, LOCK_PREFIX } from '../../shared/x86/smp-locks.ts';
import type { KernelManifest } from '../manifest.ts';
import { ItemDecisions, type PluginContext, type VerifierPlugin } from '../plugin-api.ts';
import { KERNEL_OWNER, NO_MANIFEST, decideItems, hex, ownerName, type ItemVerdict, type SiteOwner } from './patch-sites.ts';
import { DecisionSink, ItemView, RecordCursor, TextSink, type ItemSink, type PatchView } from './patch-view.ts';

const SMP_LOCK_CODE = PATCH_KIND['smp-lock'];

/** The owner of lock-prefix site `site` (an exact `.smp_locks` entry), or undefined. */
export function findSmpLock(manifest: KernelManifest, ctx: PluginContext, site: bigint): SiteOwner | undefined {
  if (manifest.smpLocks.has(site)) return KERNEL_OWNER;
  for (const m of ctx.vm.modules.values()) if (m.smpLocks?.has(site)) return { kind: 'module', module: m };
  return undefined;
}

const byte = (b: number): string => b.toString(16).padStart(2, '0');

/** Decides one smp-lock item, reporting to `sink` (protocol items and record batches alike). */
export function checkSmpLock(v: PatchView, ctx: PluginContext, sink: ItemSink): void {
  const m = ctx.manifest;
  if (!m) return sink.deny(NO_MANIFEST);
  const site = v.site;
  const owner = findSmpLock(m, ctx, site);
  if (!owner) return sink.deny(`${hex(site)} is not a lock-prefix site (no .smp_locks entry of the kernel or a verified module)`);
  if (ctx.vm.onlineCpus <= 1) {
    return sink.deny(
      `lock-prefix restore at .smp_locks site ${hex(site)} (${ownerName(owner)}) before the VMM brought a second CPU online (${ctx.vm.onlineCpus} online)`,
    );
  }
  if (v.len !== 1) return sink.deny(`patch at .smp_locks site ${hex(site)} is ${v.len} bytes; a lock prefix is 1`);
  if (v.old(0) !== v.cur(0)) return sink.deny(`old byte ${byte(v.old(0))} differs from memory ${byte(v.cur(0))} at .smp_locks site ${hex(site)}`);
  if (v.cur(0) !== DS_PREFIX || v.neu(0) !== LOCK_PREFIX) {
    return sink.deny(`.smp_locks site ${hex(site)} (${ownerName(owner)}): ${byte(v.cur(0))} -> ${byte(v.neu(0))} is not the UP-to-SMP restore 3e -> f0`);
  }
  return sink.allowAround('.smp_locks site ', ` (${ownerName(owner)}) -> lock prefix`);
}

/** Decides one smp-lock item. Exported for tests and for plugins that wrap this policy. */
export function checkSmpLockItem(item: PatchItem, ctx: PluginContext): ItemVerdict {
  const sink = new TextSink(item.site);
  checkSmpLock(new ItemView(item), ctx, sink);
  return { decision: sink.decision, reason: sink.reason };
}

/** The smp-lock plugin. */
export const smpLockPlugin: VerifierPlugin<'text-patch'> = {
  name: 'smp-lock',
  description: 'allows smp-lock items that restore a .smp_locks lock prefix (3e -> f0) once the VMM has brought a second CPU online',
  kinds: ['text-patch'],
  decide(request, ctx) {
    return decideItems(request, 'smp-lock', (item) => checkSmpLockItem(item, ctx));
  },
  decideRecords(batch, ctx) {
    if (!batch.kindCounts[SMP_LOCK_CODE]) return { decision: 'abstain', reason: 'smp-lock: 0 allowed, 0 denied' };
    const out = new ItemDecisions(batch.records.count);
    const cursor = new RecordCursor(batch.records);
    const sink = new DecisionSink(out);
    for (let i = 0; i < out.count; i++) if (batch.records.kindCode(i) === SMP_LOCK_CODE) checkSmpLock(cursor.at(i), ctx, sink.at(i));
    return { decision: 'abstain', reason: `smp-lock: ${out.allowed} allowed, ${out.denied} denied`, items: out };
  },
};
