/**
 * Typed reads from one YAML mapping of a scenario (the top level, `keys`, or a step's
 * parameters), recording a line-numbered problem for each unknown or duplicate key, missing
 * required key, and value of the wrong shape. A failed read returns undefined; the parser
 * decides at the end whether the file is usable from the problem count.
 *
 * Scalars are read from their source text when plain, so `0xffffffff81000000` keeps all 64
 * bits and `bytes: 90` stays the byte 0x90 rather than the number ninety.
 */
import { isAlias, isMap, isScalar, isSeq, type Node, type Scalar, type YAMLMap } from 'yaml';
import type { Result } from '../shared/result.ts';
import type { Position, Problems } from './problems.ts';

/** A mapping entry: its key node and its value node (null for `key:` with nothing after). */
interface Entry {
  readonly key: Scalar;
  readonly value: Node | null;
}

/** How a value of the wrong shape is described. */
function shapeOf(node: Node): string {
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isAlias(node)) return 'an alias';
  return 'a value';
}

/** Lists choices as `a or b` or `one of a, b, c`. */
export function choices(options: readonly string[]): string {
  if (options.length === 1) return String(options[0]);
  return options.length === 2 ? `${options[0]} or ${options[1]}` : `one of ${options.join(', ')}`;
}

/** Reads one mapping. */
export class MapReader {
  readonly #entries = new Map<string, Entry>();
  readonly #problems: Problems;
  readonly #prefix: string;
  readonly #anchor: Position;

  /**
   * @param problems where problems go
   * @param prefix   starts every message (`step 3 (write): `, `keys: ` or empty)
   * @param map      the mapping, or null for an empty one (`- boot:`)
   * @param allowed  every key this mapping may have
   * @param anchor   where a missing key is reported (the line that opens the mapping)
   * @param noun     what an unknown key is called in messages (`key`, `top-level key`)
   */
  constructor(problems: Problems, prefix: string, map: YAMLMap | null, allowed: readonly string[], anchor: Position, noun = 'key') {
    this.#problems = problems;
    this.#prefix = prefix;
    this.#anchor = anchor;
    for (const pair of map?.items ?? []) {
      const key = pair.key as Node | null;
      const value = (pair.value ?? null) as Node | null;
      if (!isScalar(key) || typeof key.value !== 'string' || key.value === '') {
        this.problem(key ?? value ?? anchor, 'keys must be plain names');
        continue;
      }
      const name = key.value;
      if (this.#entries.has(name)) {
        this.problem(key, `duplicate key '${name}'`);
        continue;
      }
      if (!allowed.includes(name)) {
        this.problem(
          key,
          allowed.length === 0 || (allowed.length === 1 && allowed[0] === 'expect')
            ? `unknown ${noun} '${name}' (this step takes no parameters besides 'expect')`
            : `unknown ${noun} '${name}' (expected ${choices(allowed)})`,
        );
        continue;
      }
      this.#entries.set(name, { key, value });
    }
  }

  /** Records a problem prefixed with this mapping's name. */
  problem(at: Position, message: string): void {
    this.#problems.add(at, `${this.#prefix}${message}`);
  }

  /** True when `key` is present (even with an empty value). */
  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /** The node of `key` (null for an empty value), or undefined when absent. */
  node(key: string): Node | null | undefined {
    return this.#entries.get(key)?.value;
  }

  /** Where `key`'s value is (its key when the value is empty), for messages. */
  at(key: string): Position {
    const e = this.#entries.get(key);
    return e?.value ?? e?.key ?? this.#anchor;
  }

  /** Where item `i` of a list value is (the list itself when there is no such item). */
  itemAt(key: string, i: number): Position {
    const v = this.#entries.get(key)?.value;
    return (isSeq(v) ? (v.items[i] as Node | null | undefined) : undefined) ?? this.at(key);
  }

  /** Records that `key` is required and absent. */
  missing(key: string): void {
    this.problem(this.#anchor, `missing required key '${key}'`);
  }

  /**
   * The text of a scalar value: the source of a plain scalar, the content of a quoted or
   * block one. Maps, lists, aliases, empty values and booleans are problems. When absent,
   * records a problem if `required`, and returns undefined.
   */
  text(key: string, required = false): string | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) {
      if (required) this.missing(key);
      return undefined;
    }
    return this.#scalarText(key, e.value, e.key);
  }

  /**
   * Like {@link text}, but a YAML null written out (`null`, `~`) or the string `"null"` reads
   * as null. An empty value (`key:`) is still a problem: null must be said, not implied.
   */
  textOrNull(key: string, required = false): string | null | undefined {
    const v = this.node(key);
    if (isScalar(v) && v.value === null && typeof v.source === 'string' && v.source.trim() !== '') return null;
    const t = this.text(key, required);
    return t === 'null' ? null : t;
  }

  /** {@link text} then `parse`; the parser's error becomes `'key' <error>`. */
  parsed<T>(key: string, parse: (text: string) => Result<T, string>, required = false): T | undefined {
    const t = this.text(key, required);
    if (t === undefined) return undefined;
    const r = parse(t);
    if (!r.ok) {
      this.problem(this.at(key), `'${key}' ${r.error}`);
      return undefined;
    }
    return r.value;
  }

  /** A value from a fixed set (`'mode' must be kernel or user`); `fallback` when absent. */
  choice<T extends string>(key: string, options: readonly T[], fallback?: T): T | undefined {
    const v = this.node(key);
    if (isScalar(v) && typeof v.value === 'boolean') {
      this.problem(v, `'${key}' must be ${choices(options)}`);
      return undefined;
    }
    const t = this.text(key, fallback === undefined);
    if (t === undefined) return this.has(key) ? undefined : fallback;
    if (!(options as readonly string[]).includes(t)) {
      this.problem(this.at(key), `'${key}' must be ${choices(options)}`);
      return undefined;
    }
    return t as T;
  }

  /** A YAML boolean (`true`/`false`); `fallback` when absent. */
  bool(key: string, fallback: boolean): boolean | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return fallback;
    if (isScalar(e.value) && typeof e.value.value === 'boolean') return e.value.value;
    this.problem(e.value ?? e.key, `'${key}' must be true or false`);
    return undefined;
  }

  /**
   * The texts of a list value, or of a single scalar taken as a one-item list when
   * `scalarOk`. Each item must be a scalar. Absent: `[]`, or a problem when `required`.
   */
  texts(key: string, options: { required?: boolean; scalarOk?: boolean; max?: number } = {}): string[] | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) {
      if (options.required === true) this.missing(key);
      return options.required === true ? undefined : [];
    }
    if (!isSeq(e.value)) {
      if (options.scalarOk === true && isScalar(e.value)) {
        const t = this.#scalarText(key, e.value, e.key);
        return t === undefined ? undefined : [t];
      }
      this.problem(e.value ?? e.key, `'${key}' must be a list${options.scalarOk === true ? ' or a single value' : ''}`);
      return undefined;
    }
    const items = e.value.items as Array<Node | null>;
    if (options.max !== undefined && items.length > options.max) {
      this.problem(e.value, `'${key}' has ${items.length} items; at most ${options.max} allowed`);
      return undefined;
    }
    const out: string[] = [];
    let bad = false;
    items.forEach((item, i) => {
      const t = this.#scalarText(`${key}[${i}]`, item, e.value);
      if (t === undefined) bad = true;
      else out.push(t);
    });
    return bad ? undefined : out;
  }

  /**
   * Exactly one of `keys` must be present (`ftrace` takes `enable` or `disable`). Returns
   * the present one, or undefined after recording a problem.
   */
  exactlyOne<T extends string>(keys: readonly T[]): T | undefined {
    const present = keys.filter((k) => this.has(k));
    if (present.length === 1) return present[0];
    if (present.length === 0) this.problem(this.#anchor, `needs ${keys.map((k) => `'${k}'`).join(' or ')}`);
    else this.problem(this.at(present[1]!), `takes ${present.map((k) => `'${k}'`).join(' or ')}, not both`);
    return undefined;
  }

  #scalarText(key: string, node: Node | null, fallbackAt: Position): string | undefined {
    if (node === null || (isScalar(node) && node.value === null)) {
      this.problem(node ?? fallbackAt, `'${key}' has no value`);
      return undefined;
    }
    if (!isScalar(node)) {
      const hint = isAlias(node) ? ' (aliases are not supported in scenarios)' : '';
      this.problem(node, `'${key}' must be a single value, not ${shapeOf(node)}${hint}`);
      return undefined;
    }
    if (typeof node.value === 'boolean') {
      this.problem(node, `'${key}' must not be a boolean (got ${String(node.value)})`);
      return undefined;
    }
    if (node.type === 'PLAIN' && node.source !== undefined) return node.source;
    return String(node.value);
  }
}
