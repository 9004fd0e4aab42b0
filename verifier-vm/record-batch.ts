/**
 * Deciding a text-patch batch in record form (shared/ring/patch-records.ts), the volume path
 * of the verification ring: 40,521 ftrace sites in the Debian kernel, one batch per
 * `ftrace.set()`. The rules are the engine's own (verifier-vm/verifier.ts, plugin-api.ts:
 * deny beats allow beats abstain, per item, default deny); what differs is the bookkeeping:
 * decisions are kept in typed arrays, and an item's reason may be a template around its site
 * (shared/ring/verdict-codec.ts), so a batch of allowed items costs no object and no string
 * per item. A plugin without a record fast path (`decideRecords`) gets protocol items, made
 * once, on first use.
 *
 * INVARIANT: the packed verdict expands (expandItems) to exactly the verdict
 * `Verifier.verify` gives for the same request as protocol items; the ring's tests check it.
 */
import { PROTOCOL_VERSION, type RequestOf, type SectionGrant } from '../shared/protocol.ts';
import { PATCH_KIND, type PatchKindName } from '../shared/heki-descriptors.ts';
import type { PatchRecords } from '../shared/ring/patch-records.ts';
import type { PackedItems, PackedVerdict, ReasonTemplate } from '../shared/ring/verdict-codec.ts';
import type { AnyPlugin, Decision, PluginContext } from './plugin-api.ts';
import { ABSTAIN, ALLOW, CODE, DENY, ItemDecisions } from './item-decisions.ts';
import { runCommit, runPlugins, supersedes, type CheckedResult, type PluginMode } from './plugin-result.ts';

/** Re-exported: plugins build their record answers with these. */
export { ABSTAIN, ALLOW, DENY, ItemDecisions };

const batches = new WeakMap<object, RecordBatch>();

/** A text-patch batch in record form, as plugins' record fast paths see it. */
export class RecordBatch {
  /** Number of records of each patch kind, by kind code (PATCH_KIND). */
  readonly kindCounts: readonly number[];
  #request: RequestOf<'text-patch'> | undefined;

  constructor(
    readonly id: number,
    readonly vm: string,
    readonly records: PatchRecords,
  ) {
    this.kindCounts = records.kindCounts();
  }

  /**
   * The request as protocol items, made on first use (a plugin without a record fast path,
   * a commit hook without `commitRecords`): 40,000 items cost 40,000 objects, made once.
   */
  get request(): RequestOf<'text-patch'> {
    if (!this.#request) {
      this.#request = { v: PROTOCOL_VERSION, id: this.id, vm: this.vm, kind: 'text-patch', items: this.records.toItems() };
      batches.set(this.#request, this);
    }
    return this.#request;
  }
}

/** The record batch behind a request the record engine made, or undefined for any other request. */
export function recordBatchOf(request: object): RecordBatch | undefined {
  return batches.get(request);
}

/** Records of `kind` in `request`, counted from the records when it came as a batch. */
export function patchKindCount(request: RequestOf<'text-patch'>, kind: PatchKindName): number {
  const b = batches.get(request);
  if (b) return b.kindCounts[PATCH_KIND[kind]] ?? 0;
  let n = 0;
  for (const it of request.items) if (it.kind === kind) n++;
  return n;
}

/** Wraps records as a batch. */
export function recordBatch(id: number, vm: string, records: PatchRecords): RecordBatch {
  return new RecordBatch(id, vm, records);
}

/** What a plugin's record fast path returns (see `decideRecords` in plugin-api.ts). */
export interface RecordsResult {
  readonly decision: Decision;
  readonly reason: string;
  readonly items?: ItemDecisions;
}

/** What the engine decided, with what it needs to audit and commit. */
export interface RecordBatchOutcome {
  readonly verdict: PackedVerdict;
  /** Grants an allowing plugin returned (never for built-in patch plugins; such a verdict does not fit the ring). */
  readonly grants: readonly SectionGrant[] | undefined;
}

let scratchArrays = { decision: new Uint8Array(64), plugin: new Int32Array(64), template: new Int32Array(64) };

/** Working arrays of at least `n` entries, reset: decisions abstain, no plugin, no template. */
function scratch(n: number): typeof scratchArrays {
  if (scratchArrays.decision.length < n) {
    const size = Math.max(n, scratchArrays.decision.length * 2);
    scratchArrays = { decision: new Uint8Array(size), plugin: new Int32Array(size), template: new Int32Array(size) };
  }
  scratchArrays.decision.fill(ABSTAIN, 0, n);
  scratchArrays.plugin.fill(-1, 0, n);
  scratchArrays.template.fill(-1, 0, n);
  return scratchArrays;
}

/** The context plugin `p` gets: `base` with its own configuration (a fresh object per call, as in Verifier#decide). */
function contextFor(base: Omit<PluginContext, 'config'>, configs: Readonly<Record<string, Readonly<Record<string, unknown>>>>, p: AnyPlugin): PluginContext {
  return { manifest: base.manifest, keyring: base.keyring, vm: base.vm, facts: base.facts, config: configs[p.name] ?? {} };
}

/**
 * Decides `batch` with `claimants` (the plugins that claim text-patch requests, in order),
 * exactly as Verifier#decide does for protocol items; calls `commit` hooks afterwards. In
 * `async` mode a plugin's promise is awaited (plugin-result.ts), and the outcome is a promise
 * when one was.
 */
export function decideRecordBatch(
  batch: RecordBatch,
  claimants: readonly AnyPlugin[],
  base: Omit<PluginContext, 'config'>,
  configs: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
  mode: PluginMode = 'sync',
): RecordBatchOutcome | Promise<RecordBatchOutcome> {
  if (claimants.length === 0) {
    return { verdict: { id: batch.id, ok: false, reason: 'no plugin claims text-patch requests (default deny)', plugins: [] }, grants: undefined };
  }
  const results = runPlugins(claimants, (p) => p.decideRecords?.(batch, contextFor(base, configs, p)) ?? p.decide(batch.request as never, contextFor(base, configs, p)), batch.records.count, mode, true);
  return results instanceof Promise ? results.then((rs) => combineRecordResults(batch, claimants, base, configs, rs)) : combineRecordResults(batch, claimants, base, configs, results);
}

/** The verdict on `batch` from the plugins' checked results (in claimant order), then the commit hooks. */
function combineRecordResults(
  batch: RecordBatch,
  claimants: readonly AnyPlugin[],
  base: Omit<PluginContext, 'config'>,
  configs: Readonly<Record<string, Readonly<Record<string, unknown>>>>,
  results: readonly CheckedResult[],
): RecordBatchOutcome {
  const ctxFor = contextFor;
  const id = batch.id;
  const n = batch.records.count;
  // The winning decision of each item so far, and where its reason comes from.
  // Working arrays, reused across batches: this combination runs to its end without a turn of
  // the event loop, and the engine decides one request at a time (Verifier's ordering).
  const { decision: fDecision, plugin: fPlugin, template: fTemplate } = scratch(n);
  const fText: Array<string | undefined> = [];
  const pluginTemplates: Array<readonly ReasonTemplate[]> = [];
  let overall: { decision: Decision; reason: string } = { decision: 'abstain', reason: '' };
  let grants: readonly SectionGrant[] | undefined;
  const deciders: string[] = [];
  results.forEach((r, pi) => {
    const p = claimants[pi]!;
    const packed = r.items;
    const itemDecided = packed ? packed.allowed + packed.denied > 0 : false;
    if (r.decision !== 'abstain' || itemDecided) deciders.push(p.name);
    if (supersedes(CODE[overall.decision], CODE[r.decision])) overall = { decision: r.decision, reason: `${p.name}: ${r.reason}` };
    if (r.grants && r.decision === 'allow') grants = r.grants;
    pluginTemplates[pi] = packed ? packed.templates : [];
    // Every item abstained (a plugin's items all "abstain", or none and an overall abstain
    // or allow, which per item counts as abstain): nothing to combine. Without items a deny
    // denies every item.
    if ((packed && !itemDecided) || (!packed && r.decision !== 'deny')) return;
    for (let i = 0; i < n; i++) {
      const acc = fDecision[i] as number;
      if (acc === DENY) continue;
      const d = packed ? (packed.decision[i] as number) : DENY;
      if (supersedes(acc, d)) {
        fDecision[i] = d;
        fPlugin[i] = pi;
        if (packed) {
          const t = packed.templateOf(i);
          fTemplate[i] = t;
          // A templated reason has no text: leave fText a hole (it is read with `?? ''` only
          // for items without a template), so a batch of templated items never grows it.
          if (t < 0 || fText[i] !== undefined) fText[i] = packed.textOf(i);
        } else {
          fTemplate[i] = -1;
          fText[i] = r.reason;
        }
      }
    }
  });
  // The verdict's items: the plugin's name in front of every reason, as Verifier#decide does.
  const ok = new Uint8Array(n);
  const template = new Int32Array(n);
  const text: Array<string | undefined> = [];
  const templates: ReasonTemplate[] = [];
  // The verdict's template for each plugin's template, made on first use.
  const finalTemplate: number[][] = claimants.map(() => []);
  const defaultDeny = 'no plugin allowed this text-patch item (default deny)';
  let denied = 0;
  let firstDenied = -1;
  for (let i = 0; i < n; i++) {
    const d = fDecision[i] as number;
    ok[i] = d === ALLOW ? 1 : 0;
    if (d !== ALLOW) {
      denied++;
      if (firstDenied < 0) firstDenied = i;
    }
    if (d === ABSTAIN) {
      template[i] = -1;
      text[i] = defaultDeny;
      continue;
    }
    const pi = fPlugin[i] as number;
    const name = claimants[pi]!.name;
    const t = fTemplate[i] as number;
    if (t >= 0) {
      const known = finalTemplate[pi]!;
      let ft = known[t];
      if (ft === undefined) {
        const src = pluginTemplates[pi]![t]!;
        ft = templates.length;
        templates.push({ prefix: `${name}: ${src.prefix}`, suffix: src.suffix });
        known[t] = ft;
      }
      template[i] = ft;
    } else {
      template[i] = -1;
      text[i] = `${name}: ${fText[i] ?? ''}`;
    }
  }
  let verdict: PackedVerdict;
  if (n > 0) {
    const items: PackedItems = { count: n, ok, template, text, templates };
    const allOk = overall.decision !== 'deny' && denied === 0;
    let reason: string;
    if (overall.decision === 'deny') reason = overall.reason;
    else if (allOk) reason = `all ${n} items allowed`;
    else {
      const t = template[firstDenied] as number;
      const first = t < 0 ? (text[firstDenied] ?? '') : templates[t]!.prefix + batch.records.siteHex(firstDenied) + templates[t]!.suffix;
      reason = `${denied} of ${n} items denied; first: ${first}`;
    }
    verdict = { id, ok: allOk, reason, plugins: deciders, items };
  } else {
    const allOk = overall.decision === 'allow';
    verdict = { id, ok: allOk, reason: overall.decision === 'abstain' ? 'no plugin allowed this text-patch request (default deny)' : overall.reason, plugins: deciders };
  }
  // TRUST: as in Verifier#decide, a failing commit never turns a verdict around.
  for (const p of claimants) runCommit(() => (p.commitRecords ? p.commitRecords(batch, verdict.ok, ctxFor(base, configs, p)) : p.commit?.(batch.request as never, verdict.ok, ctxFor(base, configs, p))));
  return { verdict, grants: verdict.ok ? grants : undefined };
}
