/**
 * static-call: decides `text-patch` items of kind `static-call` (and abstains on the others).
 *
 * `static_call_update(name, func)` (kernel/static_call_inline.c, 6.1) rewrites the key's
 * trampoline `__SCT__<name>` and every one of its `.static_call_sites` through
 * `__static_call_transform()` (arch/x86/kernel/static_call.c): a call site becomes `call func`
 * (NOP5 for NULL, `2e 2e 2e 31 c0` for `__static_call_return0`); a tail-call site and the
 * trampoline become `jmp func` (for NULL the return form Linux writes at that address on the VM's CPU: `jmp x86_return_thunk` where `cpu_wants_rethunk_at()`, else `c3 cc cc cc cc`).
 *
 * An item is allowed when:
 *
 * 1. a manifest is loaded;
 * 2. the site is exactly a manifest static-call site or a key's trampoline;
 * 3. a site is not in `.init.text` after the boot check passed;
 * 4. the patch is 5 bytes;
 * 5. the old bytes equal the bytes in memory;
 * 6. the new bytes are a form the site's role allows (above), and a `call`/`jmp` goes to a
 *    function entry point of the kernel (manifest) or of a verified module, or, from a site,
 *    to its own key's trampoline (the build-time form); never to another key's trampoline,
 *    and a trampoline never to itself.
 *
 * And, over the batch, all of a key moves together: when a batch patches any instruction of a
 * key, it must patch each of the key's live sites (those in `.init.text` excepted after boot)
 * and its trampoline exactly once, all to the same function (a site that calls the trampoline
 * follows the trampoline's target). Otherwise every item of that key is denied, naming the
 * rule, so even a core that applied only the allowed items would leave the key consistent.
 *
 * Not covered: static-call sites inside modules (their calls go through the kernel's
 * trampolines, which are covered) and static-call keys a module defines.
 */
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import { RET5, XOR5RAX, bytesEqual, decodePatchInsn, formatBytes } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import type { KernelManifest, StaticCallKeyInfo } from '../manifest.ts';
import type { Decision, PluginContext, PluginResult, VerifierPlugin } from '../plugin-api.ts';
import { notePatch } from '../end-state/key-state.ts';
import { manifestTouchupContext } from '../end-state/kernel-text-prediction.ts';
import { cpuWantsRethunkAt } from '../../shared/x86/touchups/context.ts';
import { returnThunkSet } from '../../shared/x86/touchups/static-call-init.ts';
import {
  NO_MANIFEST,
  STATIC_CALL_INSN_LEN,
  allowItem,
  denyItem,
  findStaticCall,
  functionEntryOwner,
  hex,
  initTextAt,
  kernelFunctionBelow,
  ownerName,
  type FoundStaticCall,
  type ItemVerdict,
} from './patch-sites.ts';

/** Plugin name. */
export const STATIC_CALL_PLUGIN = 'static-call';

/** Where a patched static-call instruction sends calls. */
export type StaticCallTarget =
  | { readonly kind: 'null' }
  | { readonly kind: 'function'; readonly addr: bigint }
  /** A site that calls (or jumps to) its own key's trampoline: it follows the trampoline. */
  | { readonly kind: 'trampoline' };

/** One item's check: its verdict and, when allowed, the key and target for the batch rules. */
export interface StaticCallItemCheck {
  readonly verdict: ItemVerdict;
  /** The key the site belongs to, when the site is known (allowed or not). */
  readonly key?: StaticCallKeyInfo;
  /** Where the new bytes send calls, when the item is allowed. */
  readonly target?: StaticCallTarget;
}

/** `__SCK__<name>`, for reasons. */
const keyName = (k: StaticCallKeyInfo): string => `__SCK__${k.name}`;

/** A target, for reasons. */
function describeTarget(t: StaticCallTarget, k: StaticCallKeyInfo): string {
  if (t.kind === 'null') return 'NULL';
  if (t.kind === 'trampoline') return `__SCT__${k.name}`;
  return hex(t.addr);
}

/** Why `addr` is not a function entry point, as precisely as the manifest allows. */
function notAnEntry(m: KernelManifest, ctx: PluginContext, addr: bigint): string {
  const text = m.textRanges.find((r) => r.name !== '.init.text' && addr >= r.start && addr < r.end);
  const below = text ? kernelFunctionBelow(m, addr) : undefined;
  if (text && below !== undefined && below >= text.start) return `${hex(addr - below)} bytes into the kernel function at ${hex(below)}`;
  if (text) return `in kernel ${text.name} but at no function entry`;
  for (const mod of ctx.vm.modules.values()) {
    if (mod.textRanges.some((r) => addr >= r.start && addr < r.end)) return `in the text of module ${mod.name} but at no function entry`;
  }
  if (initTextAt(m, addr)) return 'in .init.text';
  return 'outside kernel and module text';
}

/** What new bytes decode to: NULL, `__static_call_return0` (the xor form), or a call/jmp destination still to check. */
type Decoded = { readonly kind: 'null' } | { readonly kind: 'function'; readonly addr: bigint } | { readonly kind: 'address'; readonly addr: bigint };

/** The target of `newBytes` for `found`'s role, or a denial. */
function decodeTarget(m: KernelManifest, item: PatchItem, found: FoundStaticCall, where: string, ctx: PluginContext): { target: Decoded } | { deny: string } {
  const sc = m.staticCalls;
  const insn = decodePatchInsn(item.site, item.newBytes);
  if (found.role === 'call') {
    if (insn.kind === 'nop5') return { target: { kind: 'null' } };
    if (bytesEqual(item.newBytes, XOR5RAX) && sc.return0 !== undefined) return { target: { kind: 'function', addr: sc.return0 } };
    if (insn.kind === 'call32') return { target: { kind: 'address', addr: insn.target } };
    return { deny: `${where}: new bytes ${formatBytes(item.newBytes)} are neither call rel32, NOP5 nor the xor that stands for __static_call_return0` };
  }
  // A NULL tail site or trampoline: the one return form __static_call_transform() writes at
  // this address on the VM's CPU (jmp x86_return_thunk where cpu_wants_rethunk_at(), else
  // ret; int3). A manifest without touch-up tables accepts either form.
  const tc = ctx.vm.cpuModel ? manifestTouchupContext(m, ctx.vm.cpuModel) : undefined;
  const thunk = tc ? tc.symbols.x86ReturnThunk : sc.returnThunk;
  const wantsThunk = tc ? cpuWantsRethunkAt(tc, item.site) : undefined;
  if (bytesEqual(item.newBytes, RET5)) {
    if (wantsThunk === true)
      return { deny: `${where}: ret for NULL, but Linux writes jmp to its return thunk (0x${thunk!.toString(16)}) here on CPU model ${ctx.vm.cpuModel!.name}` };
    return { target: { kind: 'null' } };
  }
  if (insn.kind === 'jmp32') {
    if (thunk !== undefined && insn.target === thunk) {
      if (wantsThunk === false)
        return { deny: `${where}: jmp to the return thunk for NULL, but Linux writes ret; int3 here on CPU model ${ctx.vm.cpuModel!.name}` };
      return { target: { kind: 'null' } };
    }
    if (tc && (insn.target === tc.symbols.returnThunk || returnThunkSet(tc).has(insn.target)))
      return {
        deny: `${where}: a jump to return thunk 0x${insn.target.toString(16)}, which is not the one this CPU returns through (0x${thunk!.toString(16)})`,
      };
    return { target: { kind: 'address', addr: insn.target } };
  }
  return { deny: `${where}: new bytes ${formatBytes(item.newBytes)} are neither jmp rel32 nor a return (${formatBytes(RET5)} or jmp __x86_return_thunk)` };
}

/**
 * Checks one static-call item on its own (rules 1 to 6 of the file comment). Exported for
 * tests and for plugins that wrap this policy; the batch rules are in {@link decideStaticCalls}.
 */
export function checkStaticCallItem(item: PatchItem, ctx: PluginContext): StaticCallItemCheck {
  const m = ctx.manifest;
  if (!m) return { verdict: denyItem(NO_MANIFEST) };
  const site = item.site;
  const found = findStaticCall(m, site);
  if (!found) return { verdict: denyItem(`${hex(site)} is not a static-call site (no .static_call_sites entry or __SCT__ trampoline of the kernel)`) };
  const key = found.key;
  const where =
    found.role === 'trampoline'
      ? `static-call trampoline __SCT__${key.name} at ${hex(site)}`
      : `static-call ${found.role === 'tail' ? 'tail-call ' : ''}site ${hex(site)} of ${keyName(key)}`;
  const deny = (reason: string): StaticCallItemCheck => ({ verdict: denyItem(reason), key });
  if (found.role !== 'trampoline' && ctx.vm.bootVerified && initTextAt(m, site)) return deny(`${where} is in .init.text, which is freed after boot`);
  if (item.newBytes.length !== STATIC_CALL_INSN_LEN || item.oldBytes.length !== STATIC_CALL_INSN_LEN) {
    return deny(`patch at ${where} is ${item.newBytes.length} bytes, not ${STATIC_CALL_INSN_LEN}`);
  }
  if (!bytesEqual(item.oldBytes, item.currentBytes)) {
    return deny(`old bytes differ from memory at ${hex(site)} (old ${formatBytes(item.oldBytes)}, memory ${formatBytes(item.currentBytes)})`);
  }
  const d = decodeTarget(m, item, found, where, ctx);
  if ('deny' in d) return deny(d.deny);
  const verb = found.role === 'call' ? 'call' : 'jmp';
  if (d.target.kind === 'null') return { verdict: allowItem(`${where} -> NULL`), key, target: d.target };
  if (d.target.kind === 'function') return { verdict: allowItem(`${where} -> __static_call_return0 (${hex(d.target.addr)})`), key, target: d.target };
  const t = d.target.addr;
  if (t === key.trampoline) {
    if (found.role === 'trampoline') return deny(`${where} would jump to itself`);
    return { verdict: allowItem(`${where} -> ${verb} its trampoline __SCT__${key.name}`), key, target: { kind: 'trampoline' } };
  }
  const otherKey = m.staticCalls.trampolines.get(t);
  if (otherKey !== undefined) {
    const other = m.staticCalls.keys.get(otherKey);
    return deny(`${where}: ${verb} to ${hex(t)}, the trampoline of another key (__SCT__${other?.name ?? '?'})`);
  }
  const owner = functionEntryOwner(m, ctx, t);
  if (!owner) return deny(`${where}: ${verb} to ${hex(t)}, which is not a function entry point (${notAnEntry(m, ctx, t)})`);
  return { verdict: allowItem(`${where} -> ${verb} ${hex(t)} (${ownerName(owner)} function)`), key, target: { kind: 'function', addr: t } };
}

/** The batch rule for one key; undefined when it holds. */
function keyRule(
  key: StaticCallKeyInfo,
  entries: ReadonlyArray<{ site: bigint; target: StaticCallTarget | undefined; denied: boolean }>,
  m: KernelManifest,
  ctx: PluginContext,
): string | undefined {
  const name = keyName(key);
  const denied = entries.find((e) => e.denied);
  if (denied) return `static-call key ${name}: the patch at ${hex(denied.site)} was denied, and all of a key moves together`;
  const seen = new Set<bigint>();
  for (const e of entries) {
    if (seen.has(e.site)) return `static-call key ${name}: ${hex(e.site)} appears twice in the batch`;
    seen.add(e.site);
  }
  let first: { site: bigint; target: StaticCallTarget } | undefined;
  const same = (a: StaticCallTarget, b: StaticCallTarget): boolean =>
    a.kind === b.kind && (a.kind !== 'function' || (b.kind === 'function' && a.addr === b.addr));
  for (const e of entries) {
    if (e.target === undefined || e.target.kind === 'trampoline') continue;
    if (first === undefined) first = { site: e.site, target: e.target };
    else if (!same(first.target, e.target)) {
      return (
        `static-call key ${name}: its sites would get different targets (${describeTarget(first.target, key)} at ${hex(first.site)}, ` +
        `${describeTarget(e.target, key)} at ${hex(e.site)}); all sites of a key move together`
      );
    }
  }
  const required = [key.trampoline, ...key.sites.filter((s) => !(ctx.vm.bootVerified && initTextAt(m, s)))];
  const missing = required.filter((s) => !seen.has(s));
  if (missing.length > 0) {
    const shown = missing[0] === key.trampoline ? `its trampoline __SCT__${key.name} (${hex(key.trampoline)})` : hex(missing[0]!);
    return (
      `static-call key ${name}: the batch patches ${required.length - missing.length} of its ${required.length} live sites and trampoline; ` +
      `missing ${shown}${missing.length > 1 ? ` and ${missing.length - 1} more` : ''}; all sites of a key move together`
    );
  }
  return undefined;
}

/** Decides a text-patch batch: every static-call item by itself, then the per-key rules. */
export function decideStaticCalls(items: readonly PatchItem[], ctx: PluginContext): PluginResult {
  const checks = items.map((item) => (item.kind === 'static-call' ? checkStaticCallItem(item, ctx) : undefined));
  const byKey = new Map<StaticCallKeyInfo, Array<{ index: number; site: bigint; target: StaticCallTarget | undefined; denied: boolean }>>();
  checks.forEach((c, index) => {
    if (!c?.key) return;
    const list = byKey.get(c.key) ?? [];
    list.push({ index, site: items[index]!.site, target: c.target, denied: c.verdict.decision === 'deny' });
    byKey.set(c.key, list);
  });
  const keyDenial = new Map<StaticCallKeyInfo, string>();
  const m = ctx.manifest;
  if (m) {
    for (const [key, entries] of byKey) {
      const why = keyRule(key, entries, m, ctx);
      if (why !== undefined) keyDenial.set(key, why);
    }
  }
  let allowed = 0;
  let denied = 0;
  const out = checks.map((c): { decision: Decision; reason: string } => {
    if (c === undefined) return { decision: 'abstain', reason: 'not a static-call patch' };
    const rule = c.key ? keyDenial.get(c.key) : undefined;
    const v = c.verdict.decision === 'allow' && rule !== undefined ? denyItem(rule) : c.verdict;
    if (v.decision === 'allow') allowed++;
    else denied++;
    return v;
  });
  return { decision: 'abstain', reason: `static-call: ${allowed} allowed, ${denied} denied`, items: out };
}

/** The static-call plugin. */
export const staticCallPlugin: VerifierPlugin<'text-patch'> = {
  name: STATIC_CALL_PLUGIN,
  description: "allows static_call_update batches that point a key's trampoline and all its live sites at one function entry point (or NULL)",
  kinds: ['text-patch'],
  decide(request, ctx) {
    return decideStaticCalls(request.items, ctx);
  },
  decideRecords(batch) {
    // A batch without static-call items: every item abstains, as decideStaticCalls says.
    if (batch.kindCounts[PATCH_KIND['static-call']]) return undefined;
    return { decision: 'abstain', reason: 'static-call: 0 allowed, 0 denied' };
  },
  commit(request, ok, ctx) {
    // The trampoline's new bytes are the key's new function (end-state/key-state.ts).
    if (ok && ctx.manifest)
      for (const item of request.items) if (item.kind === 'static-call') notePatch(ctx, ctx.manifest, item.kind, item.site, item.newBytes);
  },
  commitRecords(batch, ok, ctx) {
    if (ok && batch.kindCounts[PATCH_KIND['static-call']]) staticCallPlugin.commit!(batch.request, ok, ctx);
  },
};
