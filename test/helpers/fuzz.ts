/**
 * Shared settings of the fuzz and property tests (test/security/fuzz-*.test.ts and every
 * fast-check property in test/): how many runs, which seed, and how a failure is reported so
 * that it can be reproduced. Every property goes through {@link checkProperty}; a test
 * (test/unit/property-seeds.test.ts) fails on a bare `fc.assert` or `fc.check`.
 *
 * `npm test` runs each property at its default size with a fixed seed, so a run is
 * reproducible and a failure is a regression, not luck. `npm run fuzz` sets HEKI_FUZZ_RUNS
 * (runs of the hypercall fuzzer; the others scale in proportion) and HEKI_FUZZ_SEED=random
 * unless a seed is given; a failure prints the seed and fast-check's counterexample path.
 */
import fc from 'fast-check';
import type { ExecutionContext } from 'ava';

/** The default number of hypercall-fuzzer runs in `npm test` (100 calls each). */
export const DEFAULT_ABI_RUNS = 1000;

/** The seed of `npm test` runs. */
export const FIXED_SEED = 0x5eed_0001;

let randomSeed: number | undefined;

/**
 * The seed: HEKI_FUZZ_SEED (an integer, or `random` for one drawn once per process, as `npm
 * run fuzz` sets it), else {@link FIXED_SEED}.
 */
export function fuzzSeed(): number {
  const s = process.env['HEKI_FUZZ_SEED'];
  if (s === undefined || s === '') return FIXED_SEED;
  if (s === 'random') return (randomSeed ??= (Math.random() * 2 ** 32) | 0);
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new Error(`HEKI_FUZZ_SEED must be an integer or "random", got ${JSON.stringify(s.slice(0, 40))}`);
  return n | 0;
}

/** `defaultRuns` scaled by HEKI_FUZZ_RUNS / DEFAULT_ABI_RUNS (for the input fuzzers). */
export function scaledRuns(defaultRuns: number): number {
  return Math.max(1, Math.round((defaultRuns * abiRuns()) / DEFAULT_ABI_RUNS));
}

/** Runs of the hypercall fuzzer: HEKI_FUZZ_RUNS, or {@link DEFAULT_ABI_RUNS}. */
export function abiRuns(): number {
  const s = process.env['HEKI_FUZZ_RUNS'];
  if (s === undefined || s === '') return DEFAULT_ABI_RUNS;
  const n = Number(s);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`HEKI_FUZZ_RUNS must be a positive integer, got ${JSON.stringify(s)}`);
  return n;
}

/** Checks `property` and fails the test with the seed and the counterexample on failure. */
export async function checkProperty<T>(t: ExecutionContext, name: string, property: fc.IAsyncProperty<T> | fc.IProperty<T>, numRuns: number): Promise<void> {
  const seed = fuzzSeed();
  const t0 = performance.now();
  const out = await fc.check(property as fc.IAsyncProperty<T>, { seed, numRuns });
  const ms = performance.now() - t0;
  if (out.failed) {
    const why = out.errorInstance instanceof Error ? out.errorInstance.message : String(out.errorInstance);
    const report = fc.defaultReportMessage(out) ?? '';
    t.fail(`${name}: failed with seed ${seed} (reproduce: HEKI_FUZZ_SEED=${seed} HEKI_FUZZ_RUNS=${abiRuns()}): ${why}\n${report.slice(0, 20_000)}`);
    return;
  }
  t.log(`${name}: ${out.numRuns} runs, seed ${seed}, ${ms.toFixed(0)} ms`);
  t.true(out.numRuns > 0, `${name}: the property ran`);
}

/** One edit of a byte string. Positions are fractions of the length, so they fit any seed. */
export type ByteMutation =
  | { readonly kind: 'set'; readonly at: number; readonly value: number }
  | { readonly kind: 'flip'; readonly at: number; readonly bit: number }
  | { readonly kind: 'word'; readonly at: number; readonly size: 2 | 4 | 8; readonly value: bigint }
  | { readonly kind: 'truncate'; readonly at: number }
  | { readonly kind: 'delete'; readonly at: number; readonly len: number }
  | { readonly kind: 'insert'; readonly at: number; readonly bytes: Uint8Array };

/** A position in [0, 1), uniform: fast-check's default bias towards the bounds would hit byte 0 (the magic) far too often. */
const frac = fc.noBias(fc.integer({ min: 0, max: 999_999 })).map((n) => n / 1_000_000);
/** Values a length, count or offset field likes to choke on. */
export const INTERESTING_WORDS: readonly bigint[] = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffn,
  0x7fffn,
  0xffffn,
  0x7fff_ffffn,
  0x8000_0000n,
  0xffff_ffffn,
  0x1_0000_0000n,
  0x7fff_ffff_ffff_ffffn,
  0xffff_ffff_ffff_ffffn,
];

/** A random edit; words are written little-endian (ELF, xz) or at any alignment. */
export const byteMutationArb: fc.Arbitrary<ByteMutation> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('set' as const), at: frac, value: fc.integer({ min: 0, max: 255 }) }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('flip' as const), at: frac, bit: fc.integer({ min: 0, max: 7 }) }) },
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('word' as const),
      at: frac,
      size: fc.constantFrom(2 as const, 4 as const, 8 as const),
      value: fc.oneof(fc.constantFrom(...INTERESTING_WORDS), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('truncate' as const), at: frac }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), at: frac, len: fc.integer({ min: 1, max: 64 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('insert' as const), at: frac, bytes: fc.uint8Array({ minLength: 1, maxLength: 64 }) }) },
);

/** Applies edits to a copy of `seed`; the result is at most `maxLen` bytes. */
export function mutateBytes(seed: Uint8Array, edits: readonly ByteMutation[], maxLen = 1 << 20): Uint8Array {
  let b = Uint8Array.from(seed);
  for (const e of edits) {
    const at = Math.floor(e.at * Math.max(b.length, 1));
    switch (e.kind) {
      case 'set':
        if (at < b.length) b[at] = e.value;
        break;
      case 'flip':
        if (at < b.length) b[at] = (b[at] as number) ^ (1 << e.bit);
        break;
      case 'word':
        for (let i = 0; i < e.size && at + i < b.length; i++) b[at + i] = Number((e.value >> BigInt(8 * i)) & 0xffn);
        break;
      case 'truncate':
        b = b.subarray(0, at);
        break;
      case 'delete':
        b = Uint8Array.from([...b.subarray(0, at), ...b.subarray(at + e.len)]);
        break;
      case 'insert':
        if (b.length + e.bytes.length <= maxLen) b = Uint8Array.from([...b.subarray(0, at), ...e.bytes, ...b.subarray(at)]);
        break;
    }
  }
  return b.slice(0, maxLen);
}

/** Longest a single parse may take before it counts as a hang. */
export const HANG_MS = 2000;

/**
 * Runs `f` on one input: it must return (a throw fails the property with the input's size and
 * the exception), within {@link HANG_MS}. Returns what `f` returned.
 */
export function noThrowNoHang<T>(what: string, size: number, f: () => T): T {
  const t0 = performance.now();
  let r: T;
  try {
    r = f();
  } catch (e) {
    throw new Error(`${what} threw on a ${size}-byte input: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, { cause: e });
  }
  const ms = performance.now() - t0;
  if (ms > HANG_MS) throw new Error(`${what} took ${ms.toFixed(0)} ms on a ${size}-byte input (more than ${HANG_MS} ms: a hang)`);
  return r;
}

/** True when `r` is a Result whose error is a non-empty message or carries one. */
export function isTypedError(e: unknown): boolean {
  if (typeof e === 'string') return e.length > 0;
  if (typeof e !== 'object' || e === null) return false;
  const m = (e as { message?: unknown }).message;
  return typeof m === 'string' && m.length > 0;
}
