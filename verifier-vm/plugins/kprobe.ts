/**
 * kprobe: a policy plugin for `text-patch` items of kind `kprobe` (abstains on the others).
 * Default deny: with no configuration no probe is ever allowed.
 *
 * Configuration (`pluginConfig.kprobe`), half-open kernel virtual ranges as hex strings
 * (`"ffffffff81234560"` or `"0xffffffff81234560"`):
 * ```json
 * { "allow": [{ "start": "...", "end": "..." }], "deny": [{ "start": "...", "end": "..." }] }
 * ```
 * A deny range wins over an allow range. A malformed configuration denies every kprobe item,
 * naming the problem.
 *
 * Install (new byte `cc`): one byte; old == memory; memory is not already `cc`; the byte lies
 * in runtime text (a manifest text range other than `.init.text`, or a verified module's
 * text); it is not inside an ftrace or jump-label site (those bytes belong to their plugins);
 * it is in an allowed range and in no denied range; no other kprobe item of the batch has the
 * same site. The byte in memory is recorded as the probe's original byte.
 *
 * Remove (any other new byte): one byte; old == memory == `cc`; this plugin recorded a probe
 * at the site for the same owner (kernel, or the very module instance that is still loaded);
 * the new byte is the recorded original byte.
 *
 * Probes are recorded in `ctx.vm.pluginState.get('kprobe')` by `commit`, and only when the
 * whole verdict is ok (see there).
 *
 * LIMITATION: the verifier has no instruction-boundary table, so it cannot check that a probe
 * is on the first byte of an instruction, as Linux's `can_probe()` does. An allowed range is
 * therefore a statement of trust: a probe in the middle of an instruction changes that
 * instruction's bytes. Keep allowed ranges tight (function entries).
 */
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import { patchKindCount } from '../record-batch.ts';
import { INT3, formatBytes } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem, RequestOf } from '../../shared/protocol.ts';
import type { PluginContext, VerifiedModule, VerifierPlugin } from '../plugin-api.ts';
import { NO_MANIFEST, allowItem, decideItems, denyItem, hex, ownerName, patchSiteCovering, runtimeTextAt, type ItemVerdict } from './patch-sites.ts';

/** Plugin name, also its pluginState key. */
export const KPROBE_PLUGIN = 'kprobe';

/** A half-open address range. */
export interface AddrRange {
  readonly start: bigint;
  readonly end: bigint;
}

/** The parsed configuration. */
export interface KprobeConfig {
  readonly allow: readonly AddrRange[];
  readonly deny: readonly AddrRange[];
}

/** One installed probe. */
export interface InstalledKprobe {
  /** The byte the int3 replaced. */
  readonly original: number;
  /** The module whose text holds it (this exact instance), or null for the kernel. */
  readonly module: VerifiedModule | null;
}

/** What the plugin keeps per VM: installed probes by site. */
export type KprobeState = Map<bigint, InstalledKprobe>;

const HEX_ADDR = /^(0x)?[0-9a-fA-F]{1,16}$/;

function parseRanges(v: unknown, field: string): AddrRange[] | string {
  if (v === undefined) return [];
  if (!Array.isArray(v)) return `${field} must be an array of {start, end}`;
  const out: AddrRange[] = [];
  for (const [i, r] of v.entries()) {
    if (typeof r !== 'object' || r === null) return `${field}[${i}] must be an object {start, end}`;
    const { start, end } = r as Record<string, unknown>;
    if (typeof start !== 'string' || !HEX_ADDR.test(start) || typeof end !== 'string' || !HEX_ADDR.test(end)) {
      return `${field}[${i}]: start and end must be hex addresses`;
    }
    const s = BigInt(start.startsWith('0x') ? start : `0x${start}`);
    const e = BigInt(end.startsWith('0x') ? end : `0x${end}`);
    if (e <= s) return `${field}[${i}]: end ${hex(e)} is not above start ${hex(s)}`;
    out.push({ start: s, end: e });
  }
  return out;
}

/** Parses `ctx.config` for this plugin; a string names the first problem. */
export function parseKprobeConfig(config: Readonly<Record<string, unknown>>): KprobeConfig | string {
  const allow = parseRanges(config['allow'], 'allow');
  if (typeof allow === 'string') return allow;
  const deny = parseRanges(config['deny'], 'deny');
  if (typeof deny === 'string') return deny;
  return { allow, deny };
}

const inRange = (rs: readonly AddrRange[], a: bigint): AddrRange | undefined => rs.find((r) => a >= r.start && a < r.end);

/** The probes recorded for this VM (an empty map before the first commit; not stored by reading). */
export function installedKprobes(ctx: PluginContext): ReadonlyMap<bigint, InstalledKprobe> {
  const s = ctx.vm.pluginState.get(KPROBE_PLUGIN);
  return s instanceof Map ? (s as KprobeState) : new Map();
}

/** The live record at `site`: one whose module (if any) is still the loaded instance. */
function liveProbe(ctx: PluginContext, site: bigint): InstalledKprobe | undefined {
  const p = installedKprobes(ctx).get(site);
  if (!p) return undefined;
  if (p.module && ctx.vm.modules.get(p.module.name) !== p.module) return undefined; // module gone or reloaded
  return p;
}

/** Decides one kprobe item; `seen` collects the sites of earlier kprobe items of the batch. */
function checkKprobeItem(item: PatchItem, ctx: PluginContext, config: KprobeConfig, seen: Set<bigint>): ItemVerdict {
  const m = ctx.manifest;
  if (!m) return denyItem(NO_MANIFEST);
  const site = item.site;
  const dup = seen.has(site);
  seen.add(site);
  if (item.newBytes.length !== 1 || item.oldBytes.length !== 1 || item.currentBytes.length !== 1) {
    return denyItem(`kprobe patch at ${hex(site)} is ${item.newBytes.length} bytes, not 1`);
  }
  if (dup) return denyItem(`kprobe site ${hex(site)} appears twice in one batch`);
  const old = item.oldBytes[0]!;
  const cur = item.currentBytes[0]!;
  const neu = item.newBytes[0]!;
  if (old !== cur)
    return denyItem(`old bytes differ from memory at ${hex(site)} (old ${formatBytes(item.oldBytes)}, memory ${formatBytes(item.currentBytes)})`);
  const probe = liveProbe(ctx, site);

  if (neu !== INT3) {
    // Removal: put the recorded byte back over our int3.
    if (!probe) return denyItem(`no kprobe is installed at ${hex(site)}; only a recorded probe may be removed`);
    if (cur !== INT3) return denyItem(`memory at ${hex(site)} holds ${formatBytes(item.currentBytes)}, not the kprobe's int3`);
    if (neu !== probe.original)
      return denyItem(
        `kprobe removal at ${hex(site)} writes ${formatBytes(item.newBytes)}, but the original byte was ${formatBytes(Uint8Array.of(probe.original))}`,
      );
    return allowItem(`kprobe at ${hex(site)} removed, original byte ${formatBytes(item.newBytes)} restored`);
  }

  // Installation.
  if (cur === INT3) return denyItem(probe ? `a kprobe is already installed at ${hex(site)}` : `memory at ${hex(site)} already holds int3`);
  // A record while memory does not hold int3 cannot arise from ok verdicts; if it ever does,
  // the new probe replaces it.
  const text = runtimeTextAt(m, ctx, site, 1);
  if (!text) return denyItem(`kprobe site ${hex(site)} is not in kernel or verified module text`);
  const covered = patchSiteCovering(m, ctx, site);
  if (covered) return denyItem(`kprobe site ${hex(site)} is inside the ${covered.kind} site ${hex(covered.site)}`);
  const denied = inRange(config.deny, site);
  if (denied) return denyItem(`kprobe site ${hex(site)} is in the denied range [${hex(denied.start)}, ${hex(denied.end)})`);
  if (!inRange(config.allow, site)) return denyItem(`kprobe site ${hex(site)} is not in an allowed range (default deny)`);
  return allowItem(`kprobe installed at ${hex(site)} (${ownerName(text.owner)}) over ${formatBytes(item.currentBytes)}`);
}

/** Decides every item of a batch; the same function runs in `decide` and in `commit`. */
function checkAll(request: RequestOf<'text-patch'>, ctx: PluginContext) {
  const config = parseKprobeConfig(ctx.config);
  const seen = new Set<bigint>();
  return decideItems(request, 'kprobe', (item) =>
    typeof config === 'string' ? denyItem(`invalid kprobe configuration: ${config}`) : checkKprobeItem(item, ctx, config, seen),
  );
}

/** The kprobe plugin. */
export const kprobePlugin: VerifierPlugin<'text-patch'> = {
  name: KPROBE_PLUGIN,
  description: 'allows int3 kprobes only inside configured address ranges (default deny), and their removal restoring the recorded byte',
  kinds: ['text-patch'],
  decide(request, ctx) {
    return checkAll(request, ctx);
  },
  commitRecords(batch, ok, ctx) {
    // Only a batch with kprobe items changes state; leave the others in record form.
    if (ok && batch.kindCounts[PATCH_KIND.kprobe]) kprobePlugin.commit!(batch.request, ok, ctx);
  },
  decideRecords(batch) {
    // A batch without kprobe items: every item abstains, whatever the configuration.
    if (batch.kindCounts[PATCH_KIND.kprobe]) return undefined;
    return { decision: 'abstain', reason: 'kprobe: 0 allowed, 0 denied' };
  },
  commit(request, ok, ctx) {
    // Only an ok verdict changes state. The core applies a text-patch batch all or nothing
    // (hypervisor/hypercalls/text-patch.ts), and the verifier link journals only ok verdicts
    // for replay to a spare (hypervisor/verifier-link), so recording probes of a denied batch
    // would give this worker state that nothing applied and no spare could rebuild. Were a
    // core to apply the allowed items of a denied batch, their probes would go unrecorded and
    // their removal would be refused: it fails closed.
    // INVARIANT: state has not changed since decide (commit is the only writer), so re-running
    // the check gives the same per-item decisions.
    if (!ok || patchKindCount(request, 'kprobe') === 0) return;
    const result = checkAll(request, ctx);
    let state = ctx.vm.pluginState.get(KPROBE_PLUGIN);
    if (!(state instanceof Map)) {
      state = new Map() as KprobeState;
      ctx.vm.pluginState.set(KPROBE_PLUGIN, state);
    }
    const probes = state as KprobeState;
    request.items.forEach((item, i) => {
      if (item.kind !== 'kprobe' || result.items?.[i]?.decision !== 'allow') return;
      const neu = item.newBytes[0];
      if (neu === INT3) {
        const text = runtimeTextAt(ctx.manifest!, ctx, item.site, 1);
        probes.set(item.site, { original: item.currentBytes[0]!, module: text?.owner.kind === 'module' ? text.owner.module : null });
      } else {
        probes.delete(item.site);
      }
    });
  },
};
