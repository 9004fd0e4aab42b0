/**
 * What the engine takes from a plugin: its answer checked, and its call made safe. A plugin is
 * code of the user's (WorkerInit.pluginModules, `heki replay --plugin`), so nothing it returns
 * is trusted: a result that is not a {@link PluginResult} (undefined, `null` items, a
 * decision that is not one of the three, a reason that is not text, items that do not match
 * the request, malformed grants), a throw, a rejected promise, or a getter that throws, is a
 * denial naming the plugin and what was wrong. A promise is awaited where the caller can wait
 * (`async` mode), and deny still wins over every other answer.
 *
 * The engine (plugin-engine.ts) calls plugins through {@link runPlugins} and gets
 * {@link CheckedResult}s, for object requests and record batches alike; the combination rule
 * is {@link supersedes}.
 */
import { describeValue, type SectionGrant } from '../shared/protocol.ts';
import { reportProgress } from '../shared/progress.ts';
import { ABSTAIN, ALLOW, DENY, ItemDecisions, type Decision } from './plugin-decisions.ts';
import type { AnyPlugin } from './plugin-api.ts';

/** A plugin's answer after {@link checkPluginResult}: well-formed, copied out of the plugin's objects. */
export interface CheckedResult {
  readonly decision: Decision;
  readonly reason: string;
  /** Per-item decisions, exactly one per item of the request (batches only). */
  readonly items?: ItemDecisions;
  readonly grants?: readonly SectionGrant[];
}

/** Longest reason kept from a plugin (a verdict's reason is at most 4,096 characters: shared/protocol.ts). */
export const MAX_PLUGIN_REASON = 1024;

/** Most grants a result may carry (one per ELF section; a module has at most 65,535). */
const MAX_GRANTS = 65_536;

const DECISIONS: ReadonlyMap<unknown, number> = new Map<unknown, number>([
  ['abstain', ABSTAIN],
  ['allow', ALLOW],
  ['deny', DENY],
]);

/**
 * Whether decision code `d` replaces `acc` in the combination of plugins' answers: deny beats
 * allow beats abstain, and the first answer of the winning kind is kept (plugin-api.ts).
 * The one statement of the rule, for whole requests and for items, on both paths.
 */
export function supersedes(acc: number, d: number): boolean {
  return acc !== DENY && (d === DENY || (d === ALLOW && acc === ABSTAIN));
}

/** A plugin's denial, naming it and what went wrong. */
export function pluginDenial(plugin: string, problem: string): CheckedResult {
  return { decision: 'deny', reason: `plugin ${plugin} ${problem}` };
}

/** Whether `v` is a promise (any thenable). A `then` getter that throws counts as not one: the result check then reports the object unreadable. */
function isThenable(v: unknown): v is PromiseLike<unknown> {
  try {
    return (typeof v === 'object' || typeof v === 'function') && v !== null && typeof (v as { then?: unknown }).then === 'function';
  } catch {
    return false;
  }
}

const message = (e: unknown): string => {
  try {
    return e instanceof Error ? e.message : String(e);
  } catch {
    return describeValue(e);
  }
};

const cut = (s: string): string => (s.length > MAX_PLUGIN_REASON ? `${s.slice(0, MAX_PLUGIN_REASON)}...` : s);

/** The reason text of a result or item, or why it is not one. */
function reasonOf(v: unknown, path: string): string | { problem: string } {
  if (typeof v !== 'string') return { problem: `${path} is ${describeValue(v)}, not a string` };
  return cut(v);
}

/**
 * Checks what `plugin` returned for a request of `n` items (0 for requests that are not
 * batches). `packed` allows an {@link ItemDecisions} for items (a record fast path's answer).
 * Never throws: anything wrong is a denial naming the plugin and the problem.
 */
export function checkPluginResult(plugin: string, raw: unknown, n: number, packed = false): CheckedResult {
  try {
    return check(plugin, raw, n, packed);
  } catch (e) {
    // A getter or proxy trap of the plugin's object threw while it was read.
    return pluginDenial(plugin, `returned a result that cannot be read: ${cut(message(e))}`);
  }
}

function check(plugin: string, raw: unknown, n: number, packed: boolean): CheckedResult {
  const bad = (problem: string): CheckedResult => pluginDenial(plugin, `returned a malformed result: ${problem}`);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return bad(`${describeValue(raw)}, not an object {decision, reason}`);
  const r = raw as Record<string, unknown>;
  // Each field is read once: a getter cannot show the check one value and the engine another.
  const decisionValue = r['decision'];
  const reasonValue = r['reason'];
  const itemsValue = r['items'];
  const grantsValue = r['grants'];
  const code = DECISIONS.get(decisionValue);
  if (code === undefined) return bad(`decision is ${describeValue(decisionValue)}, not allow, deny or abstain`);
  const reason = reasonOf(reasonValue, 'reason');
  if (typeof reason !== 'string') return bad(reason.problem);
  const decision = decisionValue as Decision;
  let items: ItemDecisions | undefined;
  if (itemsValue !== undefined) {
    const it = itemsOf(itemsValue, n, packed);
    if (typeof it === 'string') return bad(it);
    items = it;
  }
  let grants: SectionGrant[] | undefined;
  if (grantsValue !== undefined) {
    const g = grantsOf(grantsValue);
    if (typeof g === 'string') return bad(g);
    grants = g;
  }
  return { decision, reason: decision === 'deny' && reason === '' ? '(no reason given)' : reason, ...(items ? { items } : {}), ...(grants ? { grants } : {}) };
}

/** The items of a result as decisions, or the problem. */
function itemsOf(v: unknown, n: number, packed: boolean): ItemDecisions | string {
  if (v instanceof ItemDecisions) {
    if (!packed) return 'items is an ItemDecisions, which only decideRecords may return';
    return v.count === n ? v : `items has ${v.count} decisions for ${n} items`;
  }
  if (!Array.isArray(v)) return `items is ${describeValue(v)}, not an array`;
  if (v.length !== n) return n === 0 ? `items has ${v.length} entries, but this request has no items` : `items has ${v.length} entries for ${n} items`;
  const out = new ItemDecisions(n);
  for (let i = 0; i < n; i++) {
    const item: unknown = v[i];
    if (typeof item !== 'object' || item === null) return `items[${i}] is ${describeValue(item)}, not an object {decision, reason}`;
    const d = (item as Record<string, unknown>)['decision'];
    const code = DECISIONS.get(d);
    if (code === undefined) return `items[${i}].decision is ${describeValue(d)}, not allow, deny or abstain`;
    const reason = reasonOf((item as Record<string, unknown>)['reason'], `items[${i}].reason`);
    if (typeof reason !== 'string') return reason.problem;
    if (code !== ABSTAIN) out.set(i, d as 'allow' | 'deny', code === DENY && reason === '' ? '(no reason given)' : reason);
  }
  return out;
}

/** The grants of a result, copied, or the problem. */
function grantsOf(v: unknown): SectionGrant[] | string {
  if (!Array.isArray(v)) return `grants is ${describeValue(v)}, not an array`;
  if (v.length > MAX_GRANTS) return `grants has ${v.length} entries, more than ${MAX_GRANTS}`;
  const out: SectionGrant[] = [];
  for (let i = 0; i < v.length; i++) {
    const g: unknown = v[i];
    if (typeof g !== 'object' || g === null) return `grants[${i}] is ${describeValue(g)}, not an object {shndx, permissions}`;
    const shndx = (g as Record<string, unknown>)['shndx'];
    const permissions = (g as Record<string, unknown>)['permissions'];
    if (typeof shndx !== 'number' || !Number.isInteger(shndx) || shndx < 0 || shndx > 0xffff)
      return `grants[${i}].shndx is ${describeValue(shndx)}, not a section index`;
    if (typeof permissions !== 'number' || !Number.isInteger(permissions) || permissions < 0 || permissions > 0xff)
      return `grants[${i}].permissions is ${describeValue(permissions)}, not MEM_ATTR bits`;
    out.push({ shndx, permissions });
  }
  return out;
}

/** How {@link runPlugins} treats a plugin that answers with a promise. */
export type PluginMode = 'sync' | 'async';

/**
 * Calls `call` for each of `plugins` in order and checks each answer ({@link checkPluginResult}
 * for a request of `n` items). A throw is a denial naming the plugin. A promise: in `async`
 * mode it is awaited (a rejection is a denial) before the next plugin runs, so facts still
 * flow in order, and the results come as a promise; in `sync` mode, where the caller cannot
 * wait, it is a denial saying so. Results are returned in plugin order; the value is a promise
 * only when some plugin answered with one.
 */
export function runPlugins(
  plugins: readonly AnyPlugin[],
  call: (p: AnyPlugin) => unknown,
  n: number,
  mode: PluginMode,
  packed = false,
): CheckedResult[] | Promise<CheckedResult[]> {
  const out: CheckedResult[] = [];
  for (let i = 0; i < plugins.length; i++) {
    const p = plugins[i]!;
    const raw = invoke(p, call);
    // PROGRESS: the engine reports after each plugin call, never the plugin: one that loops or
    // never settles reports nothing, and the core's watchdog cuts it (shared/progress.ts).
    reportProgress();
    if (!isThenable(raw)) {
      out.push(raw instanceof Failure ? raw.result : checkPluginResult(p.name, raw, n, packed));
      continue;
    }
    if (mode === 'sync') {
      settleQuietly(raw);
      out.push(
        pluginDenial(
          p.name,
          'answered with a promise, and this verifier decides synchronously (Verifier.verify without async; the worker and heki replay await it)',
        ),
      );
      continue;
    }
    return finishAsync(plugins, call, n, packed, out, i, raw);
  }
  return out;
}

async function finishAsync(
  plugins: readonly AnyPlugin[],
  call: (p: AnyPlugin) => unknown,
  n: number,
  packed: boolean,
  out: CheckedResult[],
  from: number,
  pending: PromiseLike<unknown>,
): Promise<CheckedResult[]> {
  for (let i = from; i < plugins.length; i++) {
    const p = plugins[i]!;
    let raw: unknown = i === from ? pending : invoke(p, call);
    if (i !== from) reportProgress();
    if (raw instanceof Failure) {
      out.push(raw.result);
      continue;
    }
    if (isThenable(raw)) {
      try {
        raw = await raw;
        reportProgress();
      } catch (e) {
        out.push(pluginDenial(p.name, `failed: ${cut(message(e))}`));
        continue;
      }
    }
    out.push(checkPluginResult(p.name, raw, n, packed));
  }
  return out;
}

/** A call that threw, as a denial. */
class Failure {
  constructor(readonly result: CheckedResult) {}
}

function invoke(p: AnyPlugin, call: (p: AnyPlugin) => unknown): unknown {
  try {
    return call(p);
  } catch (e) {
    return new Failure(pluginDenial(p.name, `failed: ${cut(message(e))}`));
  }
}

/** Keeps a promise a plugin returned where nobody awaits it from becoming an unhandled rejection (which would end the process). */
export function settleQuietly(v: unknown): void {
  if (!isThenable(v)) return;
  try {
    v.then(undefined, () => undefined);
  } catch {
    // A `then` that throws settles nothing: nothing to keep quiet.
  }
}

/** Runs a plugin's commit hook: a throw or a rejected promise is dropped (see the TRUST notes at the callers). */
export function runCommit(hook: () => unknown): void {
  try {
    settleQuietly(hook());
    reportProgress();
  } catch {
    // TRUST: a failing commit must not turn a verdict around after the fact; the plugin's
    // state update is lost, which makes later requests fail closed, never open.
  }
}
