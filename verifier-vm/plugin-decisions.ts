/**
 * A plugin's decisions, the part of the plugin API (`heki-sim/plugin-api`, which re-exports
 * it) that the engine reads back: the three answers, and a text-patch batch in record form
 * (the verification ring's volume path: 38,252 live ftrace sites in the Debian kernel, one
 * batch per `ftrace.set()`) with the packed per-item answer a record fast path gives.
 * Decisions are kept in a typed array, and an item's reason may be a template around its site
 * (shared/ring/verdict-codec.ts), so a batch of allowed items costs no object and no string
 * per item.
 *
 * INVARIANT: this file imports nothing of the verifier engine; the engine
 * (verifier-vm/plugin-engine.ts) imports it.
 */
import type { RequestOf } from '../shared/protocol.ts';
import type { PatchRecords } from '../shared/ring/patch-records.ts';
import type { ReasonTemplate } from '../shared/ring/verdict-codec.ts';

/** A plugin's answer on one request or one item. */
export type Decision = 'allow' | 'deny' | 'abstain';

/** Decision codes in `ItemDecisions.decision`. */
export const ABSTAIN = 0;
export const ALLOW = 1;
export const DENY = 2;
/** The code of each decision. */
export const CODE: Readonly<Record<Decision, number>> = { abstain: ABSTAIN, allow: ALLOW, deny: DENY };

/** A text-patch batch in record form, as a plugin's record fast path (`decideRecords`) sees it. */
export interface RecordBatch {
  /** The request's id. */
  readonly id: number;
  /** The VM that sent it. */
  readonly vm: string;
  /** The items, one fixed-size record each (`siteLo(i)`, `siteHi(i)`, `kindCode(i)`, `len(i)`, bytes at `offset(i)`). */
  readonly records: PatchRecords;
  /** Number of records of each patch kind, by kind code (`PATCH_KIND`, shared/heki-descriptors.ts). */
  readonly kindCounts: readonly number[];
  /**
   * The request as protocol items, made on first use and then kept (for a plugin without a
   * record fast path, a commit hook without `commitRecords`): 40,000 items cost 40,000
   * objects, made once.
   */
  readonly request: RequestOf<'text-patch'>;
}

/** What a plugin's record fast path returns (`decideRecords` of a VerifierPlugin). */
export interface RecordsResult {
  /** The decision on the whole batch (on anything `items` leaves undecided). */
  readonly decision: Decision;
  /** Why. Required for deny. */
  readonly reason: string;
  /** One decision per record, packed. */
  readonly items?: ItemDecisions;
}

/**
 * One plugin's per-item decisions on a record batch. Every item starts as `abstain`; an
 * item's reason is either text ({@link set}) or a template around the item's site
 * ({@link setTemplate}, with {@link templateId}).
 */
export class ItemDecisions {
  readonly count: number;
  /** Per item: 0 abstain, 1 allow, 2 deny (ABSTAIN, ALLOW, DENY). Write it through {@link set} and {@link setTemplate}. */
  readonly decision: Uint8Array;
  /** Template index + 1 per item; 0 when the reason is text. */
  readonly #template: Int32Array;
  #text: Array<string | undefined> | undefined;
  /** The interned templates, indexed by {@link templateId}. */
  readonly templates: ReasonTemplate[] = [];
  /** Items allowed and denied so far. */
  allowed = 0;
  denied = 0;
  #index: Map<string, number> | undefined;

  /** Decisions for `count` items, all `abstain`. */
  constructor(count: number) {
    this.count = count;
    this.decision = new Uint8Array(count);
    this.#template = new Int32Array(count);
  }

  /** Item `i`'s template index, or -1 when its reason is text. */
  templateOf(i: number): number {
    return (this.#template[i] as number) - 1;
  }

  /** Item `i`'s text reason (undefined for a template or an abstention). */
  textOf(i: number): string | undefined {
    return this.#text?.[i];
  }

  /** The index of the template `prefix + hex(site) + suffix` (interned). */
  templateId(prefix: string, suffix: string): number {
    // Few templates per batch (one per owner and trampoline): look at them first.
    const ts = this.templates;
    for (let k = 0; k < ts.length && k < 8; k++) if (ts[k]!.prefix === prefix && ts[k]!.suffix === suffix) return k;
    if (ts.length < 8) {
      ts.push({ prefix, suffix });
      return ts.length - 1;
    }
    const index = (this.#index ??= new Map(ts.map((x, k) => [`${x.prefix}\u0000${x.suffix}`, k])));
    const key = `${prefix}\u0000${suffix}`;
    let t = index.get(key);
    if (t === undefined) {
      t = ts.length;
      ts.push({ prefix, suffix });
      index.set(key, t);
    }
    return t;
  }

  /** Item `i` is decided with a text reason. */
  set(i: number, decision: 'allow' | 'deny', reason: string): void {
    this.#count(decision);
    this.decision[i] = CODE[decision];
    this.#template[i] = 0;
    (this.#text ??= new Array<string | undefined>(this.count))[i] = reason;
  }

  /** Item `i` is decided with template `t`. */
  setTemplate(i: number, decision: 'allow' | 'deny', t: number): void {
    this.#count(decision);
    this.decision[i] = CODE[decision];
    this.#template[i] = t + 1;
  }

  #count(d: 'allow' | 'deny'): void {
    if (d === 'allow') this.allowed++;
    else this.denied++;
  }
}
