/**
 * Plain data as JSON, for state whose shape no schema here can know (a verifier plugin's
 * private state, configuration its consumer checks): the `plain` schema of
 * shared/state-schema.ts. A fixed spelling, independent of the runtime (unlike node:v8
 * `serialize`): JSON's own values as they are, and one tagged object for each type JSON
 * lacks:
 * ```
 * {"$bigint": "0x1f"}      bigint (hex, "-0x1f" when negative)
 * {"$bytes": "AAEC"}       Uint8Array (base64)
 * {"$map": [[k, v], ...]}  Map
 * {"$set": [v, ...]}       Set
 * {"$undefined": true}     undefined (in a list or a map; an object field that is undefined is left out)
 * {"$object": {...}}       a plain object with a key that starts with "$" (so it is not read as a tag)
 * ```
 * Anything else (a class instance, a function, a symbol, NaN or an infinity) is not plain
 * data: writing it is an internal error, and a tag this list does not name is refused on read.
 */
import { type Result, err, ok } from './result.ts';
import type { Json, Schema } from './state-schema.ts';

/** Deepest nesting read back (a bound against a crafted section that would exhaust the stack). */
const MAX_DEPTH = 64;

function encodePlain(v: unknown, at: string): Json {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`internal: ${at} is ${v}, not plain data`);
    return v;
  }
  if (v === undefined) return { $undefined: true };
  if (typeof v === 'bigint') return { $bigint: v < 0n ? `-0x${(-v).toString(16)}` : `0x${v.toString(16)}` };
  if (v instanceof Uint8Array) return { $bytes: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64') };
  if (v instanceof Map) return { $map: [...v].map(([k, x], i) => [encodePlain(k, `${at}.$map[${i}][0]`), encodePlain(x, `${at}.$map[${i}][1]`)]) };
  if (v instanceof Set) return { $set: [...v].map((x, i) => encodePlain(x, `${at}.$set[${i}]`)) };
  if (Array.isArray(v)) return v.map((x, i) => encodePlain(x, `${at}[${i}]`));
  if (typeof v === 'object' && (Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = encodePlain(x, `${at}.${k}`);
    return Object.keys(out).some((k) => k.startsWith('$')) ? { $object: out } : out;
  }
  throw new Error(`internal: ${at} is not plain data`);
}

/** One spelling per value: lowercase, no leading zeros, no "-0x0". */
const HEX_BIG = /^(?:0x0|-?0x[1-9a-f][0-9a-f]*)$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodePlain(j: unknown, at: string, depth: number): Result<unknown, string> {
  if (depth > MAX_DEPTH) return err(`${at} nests deeper than ${MAX_DEPTH}`);
  if (j === null || typeof j === 'boolean' || typeof j === 'string' || typeof j === 'number') return ok(j);
  const all = (xs: unknown[], where: (i: number) => string): Result<unknown[], string> => {
    const out: unknown[] = [];
    for (const [i, x] of xs.entries()) {
      const d = decodePlain(x, where(i), depth + 1);
      if (!d.ok) return d;
      out.push(d.value);
    }
    return ok(out);
  };
  if (Array.isArray(j)) return all(j, (i) => `${at}[${i}]`);
  if (typeof j !== 'object') return err(`${at} is not JSON`);
  const o = j as Record<string, unknown>;
  const keys = Object.keys(o);
  const tag = keys.length === 1 && keys[0]!.startsWith('$') ? keys[0]! : undefined;
  if (tag === undefined) {
    if (keys.some((k) => k.startsWith('$'))) return err(`${at} mixes a "$" tag with other fields`);
    return plainObject(o, at, depth);
  }
  const x = o[tag];
  switch (tag) {
    case '$undefined':
      return x === true ? ok(undefined) : err(`${at}.$undefined must be true`);
    case '$bigint':
      return typeof x === 'string' && HEX_BIG.test(x)
        ? ok(x.startsWith('-') ? -BigInt(x.slice(1)) : BigInt(x))
        : err(`${at}.$bigint must be a hex integer string ("0x1f")`);
    case '$bytes':
      return typeof x === 'string' && BASE64.test(x) ? ok(new Uint8Array(Buffer.from(x, 'base64'))) : err(`${at}.$bytes must be base64`);
    case '$set': {
      if (!Array.isArray(x)) return err(`${at}.$set must be a list`);
      const d = all(x, (i) => `${at}.$set[${i}]`);
      return d.ok ? ok(new Set(d.value)) : d;
    }
    case '$map': {
      if (!Array.isArray(x) || !x.every((p) => Array.isArray(p) && p.length === 2)) return err(`${at}.$map must be a list of [key, value] pairs`);
      const d = all(x.flat(), (i) => `${at}.$map[${i >> 1}][${i & 1}]`);
      if (!d.ok) return d;
      const pairs = Array.from({ length: x.length }, (_, i) => [d.value[2 * i], d.value[2 * i + 1]] as const);
      return ok(new Map(pairs));
    }
    case '$object':
      return typeof x === 'object' && x !== null && !Array.isArray(x)
        ? plainObject(x as Record<string, unknown>, `${at}.$object`, depth)
        : err(`${at}.$object must be an object`);
    default:
      return err(`${at} has the unknown tag ${tag}`);
  }
}

function plainObject(o: Record<string, unknown>, at: string, depth: number): Result<Record<string, unknown>, string> {
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(o)) {
    const d = decodePlain(x, `${at}.${k}`, depth + 1);
    if (!d.ok) return d;
    // A key "__proto__" from JSON.parse is an own property; defineProperty keeps it one.
    Object.defineProperty(out, k, { value: d.value, enumerable: true, writable: true, configurable: true });
  }
  return ok(out);
}

/** Plain data of any shape, tagged where JSON lacks the type. */
export const plain: Schema<unknown> = {
  describe: 'plain data',
  encode: (v) => encodePlain(v, '$'),
  decode: (j, at) => decodePlain(j, at, 0),
};
