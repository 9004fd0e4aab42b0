/**
 * The plugin engine: the one place where the plugins that claim a request are asked, their
 * answers checked (plugin-result.ts), combined by the rule of plugin-api.ts (deny beats allow
 * beats abstain, per item for batches, default deny), turned into a verdict, and committed.
 *
 * A request comes in one of two forms, which the engine sees through a {@link RequestForm}:
 * an object request of any kind, as comlink carries it (request-verdict.ts), or a text-patch
 * batch in record form, the verification ring's volume path (record-batch.ts). Both give the
 * same verdict on the same items, because both are decided here. The verdict is in packed form
 * (shared/ring/verdict-codec.ts): per item, decisions in typed arrays and a reason that may be
 * a template around the item's site, so a batch of 38,252 allowed ftrace items costs no object
 * and no string per item; the object form expands it into protocol items.
 */
import type { RequestKind, SectionGrant } from '../shared/protocol.ts';
import type { PackedItems, PackedVerdict, ReasonTemplate } from '../shared/ring/verdict-codec.ts';
import type { AnyPlugin, PluginContext } from './plugin-api.ts';
import { ABSTAIN, ALLOW, CODE, DENY } from './plugin-decisions.ts';
import { runCommit, runPlugins, supersedes, type CheckedResult, type PluginMode } from './plugin-result.ts';

/** One request as the engine decides it, whatever form it came in. */
export interface RequestForm {
  readonly id: number;
  readonly kind: RequestKind;
  /** Items of a batch (text-patch items, set-memory ranges); 0 for requests that are not batches. */
  readonly count: number;
  /** Whether an answer's items may be an `ItemDecisions` (only a record fast path's may). */
  readonly packed: boolean;
  /** Asks plugin `p` for its answer (its `decide`, or its record fast path). */
  ask(p: AnyPlugin, ctx: PluginContext): unknown;
  /** Calls plugin `p`'s commit hook, if it has one, with the verdict. */
  commit(p: AnyPlugin, ok: boolean, ctx: PluginContext): unknown;
  /** Item `i`'s site as `hex()` prints it: the middle of a templated reason. */
  siteHex(i: number): string;
}

/** The engine's decision on a request, with what the caller needs to audit and apply it. */
export interface EngineOutcome {
  readonly verdict: PackedVerdict;
  /** Grants of the last allowing plugin that returned some, when the verdict is ok. */
  readonly grants: readonly SectionGrant[] | undefined;
}

/** Per-plugin configuration, by plugin name. */
export type PluginConfigs = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** What every plugin asked about one request shares: its context without its own `config`. */
export type SharedContext = Omit<PluginContext, 'config'>;

/** The plugins of one verifier and their configuration, deciding requests in both forms. */
export class PluginEngine {
  /** The plugins, in registration order (the order they are asked). */
  readonly plugins: readonly AnyPlugin[];
  readonly #configs: PluginConfigs;
  readonly #claimants = new Map<RequestKind, readonly AnyPlugin[]>();

  /** Throws when two plugins share a name (a setup mistake, not a verdict). */
  constructor(plugins: readonly AnyPlugin[], configs: PluginConfigs = {}) {
    const names = new Set<string>();
    for (const p of plugins) {
      if (names.has(p.name)) throw new Error(`two plugins are named ${p.name}`);
      names.add(p.name);
    }
    this.plugins = plugins;
    this.#configs = configs;
  }

  /** The plugins that claim `kind`, in order. */
  claimants(kind: RequestKind): readonly AnyPlugin[] {
    let c = this.#claimants.get(kind);
    if (!c) {
      c = this.plugins.filter((p) => (p.kinds as readonly string[]).includes(kind));
      this.#claimants.set(kind, c);
    }
    return c;
  }

  /**
   * Decides `form`: asks its claimants in order (each with the context `shared()` gives, made
   * once, and its own config, in a fresh context object), combines their checked answers, then
   * calls every claimant's commit hook with the verdict. A request no plugin claims is denied
   * without calling `shared` (so it creates no VM state). In `async` mode a plugin's promise is
   * awaited (plugin-result.ts), and the outcome is a promise when one was. Never throws for
   * anything a plugin does.
   */
  decide(form: RequestForm, sharedContext: () => SharedContext, mode: PluginMode): EngineOutcome | Promise<EngineOutcome> {
    const claimants = this.claimants(form.kind);
    if (claimants.length === 0)
      return { verdict: { id: form.id, ok: false, reason: `no plugin claims ${form.kind} requests (default deny)`, plugins: [] }, grants: undefined };
    const shared = sharedContext();
    const results = runPlugins(claimants, (p) => form.ask(p, this.#context(shared, p)), form.count, mode, form.packed);
    return results instanceof Promise ? results.then((rs) => this.#conclude(form, claimants, shared, rs)) : this.#conclude(form, claimants, shared, results);
  }

  #conclude(form: RequestForm, claimants: readonly AnyPlugin[], shared: SharedContext, results: readonly CheckedResult[]): EngineOutcome {
    const out = combine(form, claimants, results);
    // TRUST: a failing commit must not turn a verdict around after the fact; the plugin's
    // state update is lost, which makes later requests fail closed, never open.
    for (const p of claimants) runCommit(() => form.commit(p, out.verdict.ok, this.#context(shared, p)));
    return out;
  }

  /** The context plugin `p` gets: `shared` with its own configuration, a fresh object per call. */
  #context(shared: SharedContext, p: AnyPlugin): PluginContext {
    return { manifest: shared.manifest, keyring: shared.keyring, vm: shared.vm, facts: shared.facts, config: this.#configs[p.name] ?? {} };
  }
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

/**
 * The verdict on `form` from its claimants' checked results (in claimant order). The rule,
 * per item and for the whole request: the first deny wins, else the first allow, else the item
 * (or request) is denied by default. Every reason is prefixed with the deciding plugin's name.
 */
function combine(form: RequestForm, claimants: readonly AnyPlugin[], results: readonly CheckedResult[]): EngineOutcome {
  const n = form.count;
  // The winning decision of each item so far, and where its reason comes from. Working
  // arrays, reused across requests: this runs to its end without a turn of the event loop,
  // and the verifier decides one request at a time (Verifier's ordering).
  const { decision: fDecision, plugin: fPlugin, template: fTemplate } = scratch(n);
  const fText: Array<string | undefined> = [];
  const pluginTemplates: Array<readonly ReasonTemplate[]> = [];
  let overall = ABSTAIN;
  let overallReason = '';
  let grants: readonly SectionGrant[] | undefined;
  const deciders: string[] = [];
  for (let pi = 0; pi < results.length; pi++) {
    const r = results[pi]!;
    const name = claimants[pi]!.name;
    const code = CODE[r.decision];
    const packed = r.items;
    const itemDecided = packed ? packed.allowed + packed.denied > 0 : false;
    if (code !== ABSTAIN || itemDecided) deciders.push(name);
    if (supersedes(overall, code)) {
      overall = code;
      overallReason = `${name}: ${r.reason}`;
    }
    if (r.grants && code === ALLOW) grants = r.grants;
    pluginTemplates[pi] = packed ? packed.templates : [];
    // Every item abstained (a plugin's items all "abstain", or none and an overall abstain
    // or allow, which per item counts as abstain): nothing to combine. Without items a deny
    // denies every item.
    if (packed ? !itemDecided : code !== DENY) continue;
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
  }
  if (n === 0) {
    const reason = overall === ABSTAIN ? `no plugin allowed this ${form.kind} request (default deny)` : overallReason;
    return { verdict: { id: form.id, ok: overall === ALLOW, reason, plugins: deciders }, grants: overall === ALLOW ? grants : undefined };
  }
  // The verdict's items: the deciding plugin's name in front of every reason.
  const ok = new Uint8Array(n);
  const template = new Int32Array(n);
  const text: Array<string | undefined> = [];
  const templates: ReasonTemplate[] = [];
  // The verdict's template for each plugin's template, made on first use.
  const finalTemplate: number[][] = claimants.map(() => []);
  const defaultDeny = `no plugin allowed this ${form.kind} item (default deny)`;
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
    const t = fTemplate[i] as number;
    if (t >= 0) {
      const known = finalTemplate[pi]!;
      let ft = known[t];
      if (ft === undefined) {
        const src = pluginTemplates[pi]![t]!;
        ft = templates.length;
        templates.push({ prefix: `${claimants[pi]!.name}: ${src.prefix}`, suffix: src.suffix });
        known[t] = ft;
      }
      template[i] = ft;
    } else {
      template[i] = -1;
      text[i] = `${claimants[pi]!.name}: ${fText[i] ?? ''}`;
    }
  }
  const items: PackedItems = { count: n, ok, template, text, templates };
  const allOk = overall !== DENY && denied === 0;
  let reason: string;
  if (overall === DENY) reason = overallReason;
  else if (allOk) reason = `all ${n} items allowed`;
  else {
    const t = template[firstDenied] as number;
    const first = t < 0 ? (text[firstDenied] ?? '') : templates[t]!.prefix + form.siteHex(firstDenied) + templates[t]!.suffix;
    reason = `${denied} of ${n} items denied; first: ${first}`;
  }
  return { verdict: { id: form.id, ok: allOk, reason, plugins: deciders, items }, grants: allOk ? grants : undefined };
}
