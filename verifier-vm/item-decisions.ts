/**
 * One plugin's per-item decisions on a text-patch batch in record form (verifier-vm/
 * record-batch.ts): decisions in a typed array, reasons as text or as a template around the
 * item's site, so a batch of allowed items costs no object and no string per item.
 */
import type { ReasonTemplate } from '../shared/ring/verdict-codec.ts';
import type { Decision } from './plugin-api.ts';

/** Decision codes in {@link ItemDecisions}. */
export const ABSTAIN = 0;
export const ALLOW = 1;
export const DENY = 2;
export const CODE: Record<Decision, number> = { abstain: ABSTAIN, allow: ALLOW, deny: DENY };

/**
 * One plugin's per-item decisions on a record batch. Every item starts as `abstain`; an
 * item's reason is either text or a template (see the file comment).
 */
export class ItemDecisions {
  readonly count: number;
  /** {@link ABSTAIN}, {@link ALLOW} or {@link DENY}, per item. */
  readonly decision: Uint8Array;
  /** Template index + 1 per item; 0 when the reason is text. */
  readonly #template: Int32Array;
  #text: Array<string | undefined> | undefined;
  readonly templates: ReasonTemplate[] = [];
  /** Items allowed and denied so far. */
  allowed = 0;
  denied = 0;
  #index: Map<string, number> | undefined;

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

