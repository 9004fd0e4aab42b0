/**
 * Declared schemas for the state sections of VM state images (shared/vm-image.ts): each
 * section is UTF-8 JSON whose shape a schema here states field by field, and the same schema
 * writes it and checks it on read, naming the field that is wrong.
 *
 * Why JSON with a declared schema, and not node:v8 `serialize` (the structured clone the
 * sections used before) or a hand-written binary layout: an image outlives the process that
 * wrote it (ARCHITECTURE.md rule 10), so its bytes must be ours, not the runtime's. V8's
 * serializer format is V8's (its version byte moves with Node releases, and an older Node
 * refuses a newer one's output); a binary layout per section would be exact but needs a
 * hand-written offset table for every one of some hundred fields, a second place for each
 * field to drift. JSON is stable across runtimes and languages, the state sections are small
 * (kilobytes: guest memory and module files travel elsewhere or as base64), and a reader
 * can see what an image holds. The types JSON lacks get one fixed spelling each:
 * - bigint: a hex string `0x1f` (`-0x1f` when negative), lowercase, no leading zeros;
 * - bytes (Uint8Array): standard base64;
 * - Map: a list of `[key, value]` pairs, a key at most once; Set: a list, a member at most once;
 * - an optional field: absent (never `null`) when undefined.
 * Objects are closed: a field the schema does not name is refused, so a section written by a
 * newer schema is not half-read by an older one. Data a schema cannot know (a verifier
 * plugin's private state, configuration the consumer checks itself) uses `plain` (plain-json.ts): JSON
 * with tagged objects for the types JSON lacks, equally fixed.
 */
import { type Result, err, ok } from './result.ts';

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** How one type is written to JSON and checked when read back. */
export interface Schema<T> {
  /** What a value must be, for messages ("a boolean", "a hex integer string"). */
  readonly describe: string;
  encode(value: T): Json;
  /** Checks `json` (of unknown origin) at field path `at`; the error names the field. */
  decode(json: unknown, at: string): Result<T, string>;
  /** Whether the field may be absent in an object (set by {@link opt}). */
  readonly optional?: true;
}

const must = (at: string, what: string): Result<never, string> => err(`${at} must be ${what}`);

function leaf<T>(describe: string, test: (j: unknown) => j is T): Schema<T> {
  return { describe, encode: (v) => v as Json, decode: (j, at) => (test(j) ? ok(j) : must(at, describe)) };
}

/** true or false. */
export const bool: Schema<boolean> = leaf('a boolean', (j): j is boolean => typeof j === 'boolean');
/** Any string. */
export const str: Schema<string> = leaf('a string', (j): j is string => typeof j === 'string');

/** A string matching `re` (`describe` says what it is). */
export function strMatching(re: RegExp, describe: string): Schema<string> {
  return leaf(describe, (j): j is string => typeof j === 'string' && re.test(j));
}

/** An integer in [min, max] (safe integers only). */
export function int(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Schema<number> {
  return leaf(`an integer from ${min} to ${max}`, (j): j is number => typeof j === 'number' && Number.isSafeInteger(j) && j >= min && j <= max);
}
/** A non-negative safe integer. */
export const count: Schema<number> = int(0);
/** An unsigned 32-bit integer. */
export const u32: Schema<number> = int(0, 0xffff_ffff);

/** One of the given literal values. */
export function oneOf<const L extends ReadonlyArray<string | number | boolean>>(...values: L): Schema<L[number]> {
  const d = `one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
  return leaf(d, (j): j is L[number] => values.includes(j as L[number]));
}

/** One spelling per value: lowercase, no leading zeros, no "-0x0". */
const HEX_BIG = /^(?:0x0|-?0x[1-9a-f][0-9a-f]*)$/;
/** A bigint, as a hex string. */
export const big: Schema<bigint> = {
  describe: 'a hex integer string ("0x1f")',
  encode: (v) => (v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}`),
  decode: (j, at) =>
    typeof j === 'string' && HEX_BIG.test(j) ? ok(j.startsWith('-') ? -BigInt(j.slice(1)) : BigInt(j)) : must(at, 'a hex integer string ("0x1f")'),
};

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Bytes, as base64. */
export const bytes: Schema<Uint8Array> = {
  describe: 'base64 bytes',
  encode: (v) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64'),
  decode: (j, at) => (typeof j === 'string' && BASE64.test(j) ? ok(new Uint8Array(Buffer.from(j, 'base64'))) : must(at, 'base64 bytes')),
};

/** `s`, or absent (undefined). */
export function opt<T>(s: Schema<T>): Schema<T | undefined> {
  return {
    describe: `${s.describe} or absent`,
    optional: true,
    encode: (v) => (v === undefined ? null : s.encode(v)),
    decode: (j, at) => (j === undefined ? ok(undefined) : s.decode(j, at)),
  };
}

/** A value that is not `s` at `at` itself is not null either: say so. */
function orNull<T>(s: Schema<unknown>, describe: string, d: Result<T, string>, at: string): Result<T, string> {
  return !d.ok && d.error === `${at} must be ${s.describe}` ? must(at, describe) : d;
}

/** `s`, or undefined (written as null): for a field that is always there but may hold nothing. */
export function orUndefined<T>(s: Schema<T>): Schema<T | undefined> {
  const describe = `${s.describe} or null`;
  return {
    describe,
    encode: (v) => (v === undefined ? null : s.encode(v)),
    decode: (j, at) => (j === null ? ok(undefined) : orNull(s, describe, s.decode(j, at), at)),
  };
}

/** `s`, or null. */
export function nullable<T>(s: Schema<T>): Schema<T | null> {
  const describe = `${s.describe} or null`;
  return { describe, encode: (v) => (v === null ? null : s.encode(v)), decode: (j, at) => (j === null ? ok(null) : orNull(s, describe, s.decode(j, at), at)) };
}

/** A list of `s`, at most `max` long. */
export function list<T>(s: Schema<T>, max = 1 << 24): Schema<T[]> {
  return {
    describe: `a list of ${s.describe}`,
    encode: (v) => v.map((x) => s.encode(x)),
    decode: (j, at) => {
      if (!Array.isArray(j)) return must(at, `a list (of ${s.describe})`);
      if (j.length > max) return err(`${at} has ${j.length} entries, more than ${max}`);
      const out: T[] = [];
      for (const [i, x] of j.entries()) {
        const d = s.decode(x, `${at}[${i}]`);
        if (!d.ok) return d;
        out.push(d.value);
      }
      return ok(out);
    },
  };
}

type Tuple<S extends readonly Schema<unknown>[]> = { -readonly [K in keyof S]: S[K] extends Schema<infer T> ? T : never };
/** A fixed-length list whose entries have their own schemas. */
export function tuple<const S extends readonly Schema<unknown>[]>(...items: S): Schema<Tuple<S>> {
  return {
    describe: `a list of ${items.length}`,
    encode: (v) => items.map((s, i) => s.encode((v as unknown[])[i])),
    decode: (j, at) => {
      if (!Array.isArray(j) || j.length !== items.length) return must(at, `a list of ${items.length} entries`);
      const out: unknown[] = [];
      for (const [i, s] of items.entries()) {
        const d = s.decode(j[i], `${at}[${i}]`);
        if (!d.ok) return d;
        out.push(d.value);
      }
      return ok(out as Tuple<S>);
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a field's schema may hold any type; Req/Opt below recover each one
type Fields = Record<string, Schema<any>>;
type Req<F extends Fields> = { [K in keyof F as F[K]['optional'] extends true ? never : K]: F[K] extends Schema<infer T> ? T : never };
type Opt<F extends Fields> = { [K in keyof F as F[K]['optional'] extends true ? K : never]?: F[K] extends Schema<infer T> ? T : never };
/** The value type a schema of object fields stands for. */
export type ObjectOf<F extends Fields> = { [K in keyof (Req<F> & Opt<F>)]: (Req<F> & Opt<F>)[K] };

/** A closed object: exactly these fields (an {@link opt} one may be absent), none other. */
export function obj<F extends Fields>(fields: F): Schema<ObjectOf<F>> {
  const names = Object.keys(fields);
  return {
    describe: `an object {${names.join(', ')}}`,
    encode: (v) => {
      const out: Record<string, Json> = {};
      for (const k of names) {
        const x = (v as Record<string, unknown>)[k];
        if (x !== undefined || !fields[k]!.optional) out[k] = fields[k]!.encode(x);
      }
      return out;
    },
    decode: (j, at) => {
      if (typeof j !== 'object' || j === null || Array.isArray(j)) return must(at, 'an object');
      const o = j as Record<string, unknown>;
      const extra = Object.keys(o).find((k) => !Object.hasOwn(fields, k));
      if (extra !== undefined) return err(`${at} has a field the schema does not know: ${extra}`);
      const out: Record<string, unknown> = {};
      for (const k of names) {
        const s = fields[k]!;
        if (!Object.hasOwn(o, k) && !s.optional) return err(`${at}.${k} is missing (it must be ${s.describe})`);
        const d = s.decode(o[k], `${at}.${k}`);
        if (!d.ok) return d;
        if (d.value !== undefined) out[k] = d.value;
      }
      return ok(out as ObjectOf<F>);
    },
  };
}

/** A Map, as a list of [key, value] pairs; a key at most once. */
export function map<K, V>(key: Schema<K>, value: Schema<V>, max = 1 << 24): Schema<Map<K, V>> {
  const pairs = list(tuple(key, value), max);
  return {
    describe: `a list of [${key.describe}, ${value.describe}] pairs`,
    encode: (v) => pairs.encode([...v] as [K, V][]),
    decode: (j, at) => {
      const d = pairs.decode(j, at);
      if (!d.ok) return d;
      const m = new Map<K, V>(d.value as [K, V][]);
      return m.size === d.value.length ? ok(m) : err(`${at} names a key twice`);
    },
  };
}

/** A Set, as a list; a member at most once. */
export function set<T>(member: Schema<T>, max = 1 << 24): Schema<Set<T>> {
  const l = list(member, max);
  return {
    describe: `a list of distinct ${member.describe}`,
    encode: (v) => l.encode([...v]),
    decode: (j, at) => {
      const d = l.decode(j, at);
      if (!d.ok) return d;
      const s = new Set(d.value);
      return s.size === d.value.length ? ok(s) : err(`${at} names a member twice`);
    },
  };
}

/** A schema of `T` written as one of `U` (a record kept as a map, say). */
export function mapped<T, U>(inner: Schema<U>, to: (u: U) => T, from: (t: T) => U): Schema<T> {
  return {
    describe: inner.describe,
    encode: (v) => inner.encode(from(v)),
    decode: (j, at) => {
      const d = inner.decode(j, at);
      return d.ok ? ok(to(d.value)) : d;
    },
  };
}

/** `inner`, with a further check on the decoded value (`check` says what is wrong, or undefined). */
export function refine<T>(inner: Schema<T>, check: (v: T) => string | undefined): Schema<T> {
  return {
    ...inner,
    decode: (j, at) => {
      const d = inner.decode(j, at);
      if (!d.ok) return d;
      const bad = check(d.value);
      return bad === undefined ? d : err(`${at} ${bad}`);
    },
  };
}

/** A value whose own validator (given JSON-native data) checks it, naming the field: `validate`'s error follows the path. */
export function validated<T>(describe: string, validate: (j: unknown) => Result<T, string>): Schema<T> {
  return {
    describe,
    encode: (v) => v as unknown as Json,
    decode: (j, at) => {
      const d = validate(j);
      return d.ok ? d : err(`${at}: ${d.error}`);
    },
  };
}

/** An object used as a record: string keys to `value`. */
export function record<V>(value: Schema<V>): Schema<Record<string, V>> {
  return mapped(
    map(str, value),
    (m) => Object.fromEntries(m),
    (r) => new Map(Object.entries(r)),
  );
}
