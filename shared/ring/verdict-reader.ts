/**
 * Reading verdict messages of the verification ring (the core's side): every field and every
 * item record checked against what the core expects, any problem named. The layout is in
 * shared/ring/layout.ts; the writer and the packed form are in verdict-codec.ts.
 */
import { PROTOCOL_VERSION } from '../protocol.ts';
import {
  ITEM_FORM,
  ITEM_RECORD,
  RING_MAX_PLUGINS,
  RING_MAX_TEMPLATES,
  RING_STRING_MAX,
  VD,
  VERDICT_FLAG,
  VERDICT_FLAGS_MASK,
  VERDICT_HEADER,
  VERDICT_MAGIC,
  align8,
} from './layout.ts';
import type { SpscRing } from './spsc-ring.ts';
import { readUtf8 } from './utf8.ts';
import { SITE_HEX_MAX, type PackedVerdict, type ReasonTemplate } from './verdict-codec.ts';

/** What the core expects of the next verdict: its request's id and item count (undefined: no items). */
export interface VerdictExpectation {
  readonly id: number;
  readonly items: number | undefined;
}

/** What {@link readVerdict} found. */
export type ReadVerdictResult =
  | { readonly ok: true; readonly parked: false; readonly verdict: PackedVerdict; readonly size: number }
  | { readonly ok: true; readonly parked: true; readonly size: number }
  | { readonly ok: false; readonly error: string };

/**
 * Reads and checks the verdict at `off` against what the core expects. Any problem is an
 * error naming it (the link then fails the request closed and restarts the verifier).
 */
export function readVerdict(ring: SpscRing, off: number, expect: VerdictExpectation): ReadVerdictResult {
  // No closures here: this runs once per verdict on the ring's hot path (see ring-channel.ts).
  const { u8, u32 } = ring;
  const w = off >>> 2;
  const avail = ring.available();
  if (avail < VERDICT_HEADER) return bad(`verdict header is cut short (${avail} bytes)`);
  if (u32[w] !== VERDICT_MAGIC) return bad(`bad verdict magic 0x${(u32[w] as number).toString(16)}`);
  const size = u32[w + (VD.SIZE >>> 2)] as number;
  if (size % 8 !== 0 || size < VERDICT_HEADER || size > avail) return bad(`verdict size ${size} is not a multiple of 8 in ${VERDICT_HEADER}..${avail}`);
  const version = u8[off + VD.VERSION] as number;
  if (version !== PROTOCOL_VERSION) return bad(`verdict protocol version ${version} is not ${PROTOCOL_VERSION}`);
  const id = ring.f64[(off + VD.ID) >>> 3] as number;
  if (id !== expect.id) return bad(`answer for request ${id}, not ${expect.id}`);
  const flags = u8[off + VD.FLAGS] as number;
  if ((flags & ~VERDICT_FLAGS_MASK) !== 0) return bad(`unknown verdict flags 0x${flags.toString(16)}`);
  if (u8[off + VD.RSV0] !== 0 || u8[off + VD.RSV0 + 1] !== 0 || u32[w + (VD.RSV1 >>> 2)] !== 0) return bad('reserved verdict header fields are not zero');
  const count = u32[w + (VD.ITEMS >>> 2)] as number;
  const nPlugins = (u8[off + VD.PLUGINS] as number) | ((u8[off + VD.PLUGINS + 1] as number) << 8);
  const nTemplates = (u8[off + VD.TEMPLATES] as number) | ((u8[off + VD.TEMPLATES + 1] as number) << 8);
  const reasonLen = u32[w + (VD.REASON_LEN >>> 2)] as number;
  const strings = u32[w + (VD.STRINGS_LEN >>> 2)] as number;
  if (flags & VERDICT_FLAG.PARKED) {
    if (flags !== VERDICT_FLAG.PARKED || count || nPlugins || nTemplates || reasonLen || strings || size !== VERDICT_HEADER)
      return bad('a parked verdict marker carries data');
    return { ok: true, parked: true, size };
  }
  // A verdict may leave out the items (a malformed request's denial has none, as on comlink);
  // when it has them, there is one per item of the request.
  const hasItems = (flags & VERDICT_FLAG.ITEMS) !== 0;
  if (hasItems && expect.items === undefined) return bad('verdict has items, the request had none');
  if (hasItems && count !== expect.items) return bad(`verdict has ${count} items, the request had ${expect.items}`);
  if (!hasItems && count !== 0) return bad('verdict without items counts items');
  if (nPlugins > RING_MAX_PLUGINS) return bad(`${nPlugins} plugins, more than ${RING_MAX_PLUGINS}`);
  if (nTemplates > RING_MAX_TEMPLATES) return bad(`${nTemplates} templates, more than ${RING_MAX_TEMPLATES}`);
  if (reasonLen > RING_STRING_MAX) return bad(`reason of ${reasonLen} bytes`);
  const itemsAt = VERDICT_HEADER + align8(strings);
  const heapAt = itemsAt + count * ITEM_RECORD;
  if (heapAt > size) return bad(`verdict of ${size} bytes cannot hold ${strings} string bytes and ${count} items`);
  const sr = new StringReader(ring, off + VERDICT_HEADER, off + VERDICT_HEADER + strings);
  const reason = sr.take(reasonLen);
  if (reason === undefined) return bad('reason runs past the string area');
  const plugins: string[] = [];
  for (let k = 0; k < nPlugins; k++) {
    const name = sr.take(sr.len16());
    if (name === undefined) return bad(`plugin name ${k} runs past the string area or is too long`);
    plugins.push(name);
  }
  const templates: ReasonTemplate[] = [];
  for (let k = 0; k < nTemplates; k++) {
    const pl = sr.len16();
    const sl = sr.len16();
    if (pl < 0 || sl < 0 || pl + sl + SITE_HEX_MAX > RING_STRING_MAX) return bad(`template ${k} is too long or runs past the string area`);
    const prefix = sr.take(pl);
    const suffix = sr.take(sl);
    if (prefix === undefined || suffix === undefined) return bad(`template ${k} runs past the string area`);
    templates.push({ prefix, suffix });
  }
  if (sr.p !== sr.end) return bad(`string area has ${sr.end - sr.p} unused bytes`);
  for (let q = sr.end; q < off + itemsAt; q++) if (u8[q] !== 0) return bad('string area padding is not zero');
  if (!hasItems) {
    if (size !== itemsAt) return bad(`verdict size ${size} does not match its contents (${itemsAt})`);
    return { ok: true, parked: false, verdict: { id, ok: (flags & VERDICT_FLAG.OK) !== 0, reason, plugins }, size };
  }
  const ok = new Uint8Array(count);
  const template = new Int32Array(count);
  const text = new Array<string | undefined>(count);
  let h = off + heapAt;
  const heapEnd = off + size;
  let iw = (off + itemsAt) >>> 2;
  for (let i = 0; i < count; i++, iw += 2) {
    const word = u32[iw] as number;
    const value = u32[iw + 1] as number;
    const itemOk = word & 0xff;
    const form = (word >>> 8) & 0xff;
    if (itemOk > 1 || word >>> 16 !== 0) return bad(`item ${i}: malformed record`);
    ok[i] = itemOk;
    if (form === ITEM_FORM.TEMPLATE) {
      if (value >= nTemplates) return bad(`item ${i}: template ${value} of ${nTemplates}`);
      template[i] = value;
    } else if (form === ITEM_FORM.TEXT) {
      if (value > RING_STRING_MAX || h + value > heapEnd) return bad(`item ${i}: reason of ${value} bytes runs past the verdict`);
      template[i] = -1;
      text[i] = readUtf8(ring.buf, h, h + value);
      h += value;
    } else {
      return bad(`item ${i}: unknown reason form ${form}`);
    }
  }
  if (align8(h - off) !== size) return bad(`verdict size ${size} does not match its contents (${align8(h - off)})`);
  for (let q = h; q < heapEnd; q++) if (u8[q] !== 0) return bad('item text padding is not zero');
  return {
    ok: true,
    parked: false,
    verdict: { id, ok: (flags & VERDICT_FLAG.OK) !== 0, reason, plugins, items: { count, ok, template, text, templates } },
    size,
  };
}

function bad(error: string): ReadVerdictResult {
  return { ok: false, error };
}

/** Reads the length-prefixed strings of a verdict's string area, in order. */
class StringReader {
  constructor(
    private readonly ring: SpscRing,
    public p: number,
    readonly end: number,
  ) {}
  /** A u16 length, or -1 past the end. */
  len16(): number {
    if (this.p + 2 > this.end) return -1;
    const n = (this.ring.u8[this.p] as number) | ((this.ring.u8[this.p + 1] as number) << 8);
    this.p += 2;
    return n;
  }
  /** `n` bytes as UTF-8, or undefined when they run past the end or are too many. */
  take(n: number): string | undefined {
    if (n < 0 || n > RING_STRING_MAX || this.p + n > this.end) return undefined;
    const s = readUtf8(this.ring.buf, this.p, this.p + n);
    this.p += n;
    return s;
  }
}
