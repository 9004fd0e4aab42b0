/**
 * The byte ranges of a text region that the boot touch-ups may write: every site of every
 * table, at the longest length its pass can write there, coalesced. The manifest builder
 * records the file's bytes at these ranges; the verifier puts them back into the guest's
 * text to rebuild the file image (checked page by page against the signed digests) before it
 * predicts the end state. Host and verifier compute the ranges with this one function, from
 * the same tables, so they agree by construction.
 */
import type { TouchupTables } from './tables.ts';

/** The longest `Jcc rel32` / `cs call rel32` a retpoline or return site can hold (prefix + 6). */
const BRANCH_SITE_MAX = 7;
/** A static call site: `call`/`jmp rel32` or a `Jcc rel32` tail site. */
const STATIC_CALL_SITE_MAX = 6;
/** A static call trampoline: `jmp rel32` + `ud1`. */
const TRAMPOLINE_SIZE = 8;
/** An ftrace site. */
const MCOUNT_SITE = 5;

/** Half-open `[start, end)` offsets into the region. */
export type Span = readonly [start: number, end: number];

/** Extra sites besides the tables: ftrace's and the static call trampolines. */
export interface SpanExtras {
  readonly mcountSites: readonly bigint[];
  readonly trampolines: readonly bigint[];
}

/** The coalesced spans of `[base, base + size)` the touch-ups may write, ascending. */
export function touchupSpans(tables: TouchupTables, extras: SpanExtras, base: bigint, size: number): Span[] {
  const raw: [number, number][] = [];
  const add = (addr: bigint, len: number): void => {
    const off = addr - base;
    if (off < 0n || off >= BigInt(size)) return;
    const s = Number(off);
    raw.push([s, Math.min(size, s + len)]);
  };
  for (const p of tables.paravirt) add(p.addr, p.len);
  for (const a of tables.retpolines) add(a, BRANCH_SITE_MAX);
  for (const a of tables.returns) add(a, BRANCH_SITE_MAX);
  for (const a of tables.alternatives) add(a.instr, Math.max(a.instrlen, a.replacementlen));
  for (const a of tables.smpLocks) add(a, 1);
  for (const s of tables.staticCalls) add(s.site, STATIC_CALL_SITE_MAX);
  for (const t of extras.trampolines) add(t, TRAMPOLINE_SIZE);
  for (const m of extras.mcountSites) add(m, MCOUNT_SITE);
  raw.sort((a, b) => a[0] - b[0]);
  const out: [number, number][] = [];
  for (const [s, e] of raw) {
    const last = out[out.length - 1];
    if (last && s <= last[1]) last[1] = Math.max(last[1], e);
    else out.push([s, e]);
  }
  return out;
}

/** The bytes of `text` at `spans`, concatenated. */
export function gatherSpans(text: Uint8Array, spans: readonly Span[]): Uint8Array {
  let n = 0;
  for (const [s, e] of spans) n += e - s;
  const out = new Uint8Array(n);
  let p = 0;
  for (const [s, e] of spans) {
    out.set(text.subarray(s, e), p);
    p += e - s;
  }
  return out;
}

/** Writes `bytes` (as {@link gatherSpans} made them) back at `spans` of `text`; false when the lengths disagree. */
export function scatterSpans(text: Uint8Array, spans: readonly Span[], bytes: Uint8Array): boolean {
  let p = 0;
  for (const [s, e] of spans) {
    if (p + (e - s) > bytes.length || e > text.length) return false;
    text.set(bytes.subarray(p, p + (e - s)), s);
    p += e - s;
  }
  return p === bytes.length;
}
