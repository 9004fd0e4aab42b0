/**
 * What the text-patch plugins (ftrace, jump-label, static-call, kprobe) share: where the known patch
 * sites and text ranges are (the signed manifest for the kernel, the verified modules for
 * module text), and how a per-item decision becomes a batch {@link PluginResult}.
 *
 * TRUST: sites come only from the signed manifest and from modules the verifier verified;
 * nothing the guest says about a site is believed. Every lookup is an exact match on an
 * address the verifier already knows.
 */
import { hex } from '../../shared/addr.ts';
import { reportItemProgress } from '../../shared/progress.ts';
import type { PatchItem, RequestOf } from '../../shared/protocol.ts';
import type { KernelManifest, StaticCallKeyInfo } from '../manifest.ts';
import type { Decision, PluginContext, PluginResult, VerifiedModule } from '../plugin-api.ts';

/** Who a site or range belongs to: the kernel image (manifest) or a verified module. */
export type SiteOwner = { readonly kind: 'kernel' } | { readonly kind: 'module'; readonly module: VerifiedModule };

/** The kernel as an owner. */
export const KERNEL_OWNER: SiteOwner = Object.freeze({ kind: 'kernel' });

/** `kernel` or `module <name>`, for reasons. */
export function ownerName(owner: SiteOwner): string {
  return owner.kind === 'kernel' ? 'kernel' : `module ${owner.module.name}`;
}

/** The denial every patch plugin gives before a manifest is loaded. */
export const NO_MANIFEST = 'no kernel manifest loaded';

/**
 * The manifest text range named `.init.text` that holds `addr`, if any. Linux frees init
 * text after boot (free_initmem), and ftrace (ftrace_free_init_mem) and jump labels
 * (jump_label_invalidate_initmem) stop patching it; so do we once the boot check passed.
 */
export function initTextAt(manifest: KernelManifest, addr: bigint): { start: bigint; end: bigint } | undefined {
  return manifest.textRanges.find((r) => r.name === '.init.text' && addr >= r.start && addr < r.end);
}

/** The owner of ftrace site `site` (an exact `__mcount_loc` entry), or undefined. */
export function findMcountSite(manifest: KernelManifest, ctx: PluginContext, site: bigint): SiteOwner | undefined {
  if (manifest.mcountSites.has(site)) return KERNEL_OWNER;
  for (const m of ctx.vm.modules.values()) if (m.mcountSites.has(site)) return { kind: 'module', module: m };
  return undefined;
}

/** A jump-label entry found by its site. */
export interface FoundJumpEntry {
  readonly target: bigint;
  readonly len: 2 | 5;
  readonly owner: SiteOwner;
}

/** The jump entry whose site is exactly `site`, or undefined. */
export function findJumpEntry(manifest: KernelManifest, ctx: PluginContext, site: bigint): FoundJumpEntry | undefined {
  const k = manifest.jumpEntries.get(site);
  if (k) return { target: k.target, len: k.len, owner: KERNEL_OWNER };
  for (const m of ctx.vm.modules.values()) {
    const e = m.jumpEntries.get(site);
    if (e) return { target: e.target, len: e.len, owner: { kind: 'module', module: m } };
  }
  return undefined;
}

/** Length of a static-call site or of a trampoline's patched instruction. */
export const STATIC_CALL_INSN_LEN = 5;

/** A kernel static-call instruction found by its address: a call site or a key's trampoline. */
export interface FoundStaticCall {
  /** `call` (a call site), `tail` (a tail-call site) or `trampoline` (`__SCT__<name>`). */
  readonly role: 'call' | 'tail' | 'trampoline';
  readonly key: StaticCallKeyInfo;
}

/**
 * The static-call site or trampoline at exactly `addr`, from the manifest. Module static-call
 * sites are not tracked: a module's calls go through the kernel's trampolines, which are.
 */
export function findStaticCall(manifest: KernelManifest, addr: bigint): FoundStaticCall | undefined {
  const sc = manifest.staticCalls;
  const site = sc.sites.get(addr);
  if (site) {
    const key = sc.keys.get(site.key);
    return key ? { role: site.tail ? 'tail' : 'call', key } : undefined;
  }
  const k = sc.trampolines.get(addr);
  const key = k === undefined ? undefined : sc.keys.get(k);
  return key ? { role: 'trampoline', key } : undefined;
}

/** The owner of function entry point `addr` (kernel text or a verified module's core text), or undefined. */
export function functionEntryOwner(manifest: KernelManifest, ctx: PluginContext, addr: bigint): SiteOwner | undefined {
  if (manifest.staticCalls.functionSet.has(addr)) return KERNEL_OWNER;
  for (const m of ctx.vm.modules.values()) if (m.functions?.has(addr)) return { kind: 'module', module: m };
  return undefined;
}

/** The highest kernel function entry point at or below `addr`, or undefined. */
export function kernelFunctionBelow(manifest: KernelManifest, addr: bigint): bigint | undefined {
  const f = manifest.staticCalls.functions;
  let lo = 0;
  let hi = f.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (f[mid]! <= addr) lo = mid + 1;
    else hi = mid;
  }
  return lo === 0 ? undefined : f[lo - 1];
}

/**
 * The ftrace, jump-label or static-call site (or static-call trampoline) whose instruction
 * covers byte `addr` (a site starting up to 4 bytes before it), or undefined. Used to keep
 * kprobes off bytes other plugins own.
 */
export function patchSiteCovering(
  manifest: KernelManifest,
  ctx: PluginContext,
  addr: bigint,
): { kind: 'ftrace' | 'jump-label' | 'static-call'; site: bigint } | undefined {
  for (let back = 0n; back < 5n; back++) {
    const s = addr - back;
    if (findMcountSite(manifest, ctx, s)) return { kind: 'ftrace', site: s };
    const j = findJumpEntry(manifest, ctx, s);
    if (j && back < BigInt(j.len)) return { kind: 'jump-label', site: s };
    if (findStaticCall(manifest, s)) return { kind: 'static-call', site: s };
  }
  return undefined;
}

/**
 * The text range holding all of `[addr, addr + len)`: a manifest text range other than
 * `.init.text`, or a verified module's text range. Undefined when none does.
 */
export function runtimeTextAt(manifest: KernelManifest, ctx: PluginContext, addr: bigint, len: number): { owner: SiteOwner; name: string } | undefined {
  const end = addr + BigInt(len);
  for (const r of manifest.textRanges) {
    if (r.name !== '.init.text' && addr >= r.start && end <= r.end) return { owner: KERNEL_OWNER, name: r.name };
  }
  for (const m of ctx.vm.modules.values()) {
    for (const r of m.textRanges) if (addr >= r.start && end <= r.end) return { owner: { kind: 'module', module: m }, name: `${m.name} text` };
  }
  return undefined;
}

/** One item's decision, as the item checkers return it. */
export type ItemVerdict = { readonly decision: 'allow' | 'deny'; readonly reason: string };

/** Shorthands for item checkers. */
export const allowItem = (reason: string): ItemVerdict => ({ decision: 'allow', reason });
export const denyItem = (reason: string): ItemVerdict => ({ decision: 'deny', reason });

/**
 * Runs `check` on every item of kind `itemKind` and abstains on the others; the result's
 * overall decision is `abstain` (the items carry the decisions), so the verifier's per-item
 * combination decides the batch.
 */
export function decideItems(
  request: RequestOf<'text-patch'>,
  itemKind: PatchItem['kind'],
  check: (item: PatchItem, index: number) => ItemVerdict,
): PluginResult {
  let allowed = 0;
  let denied = 0;
  // One shared answer for the items of other kinds: a batch of 40,000 ftrace items would
  // otherwise cost every other patch plugin 40,000 objects.
  const other: { decision: Decision; reason: string } = Object.freeze({ decision: 'abstain', reason: `not a ${itemKind} patch` });
  const items = request.items.map((item, i): { decision: Decision; reason: string } => {
    reportItemProgress(i);
    if (item.kind !== itemKind) return other;
    const v = check(item, i);
    if (v.decision === 'allow') allowed++;
    else denied++;
    return v;
  });
  return { decision: 'abstain', reason: `${itemKind}: ${allowed} allowed, ${denied} denied`, items };
}

/** `0x...` for a site, re-exported so plugins format addresses one way. */
export { hex };
