/**
 * Verdict messages of the verification ring (layout in shared/ring/layout.ts), and the packed
 * form of a verdict both ends share.
 *
 * A text-patch verdict carries one reason per item. Most items of a big batch are allowed for
 * the same reason but at their own site ("ftrace: ftrace site 0x... (kernel) -> call
 * ftrace_caller (0x...)"), so an item's reason is either its own text or a template: the
 * reason is `prefix + hex(site) + suffix`, with the site of the request's record at the same
 * index, which the core still holds. {@link expandItems} turns the packed items into exactly
 * the `{ ok, reason }` objects a comlink verdict has.
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
  VERDICT_HEADER,
  VERDICT_MAGIC,
  align8,
} from './layout.ts';
import type { SpscRing } from './spsc-ring.ts';
import { writeUtf8 } from './utf8.ts';

/** A reason shared by items, around each item's site: `prefix + hex(site) + suffix`. */
export interface ReasonTemplate {
  readonly prefix: string;
  readonly suffix: string;
}

/** Longest `hex(site)` of a u64: `0x` and 16 digits. */
export const SITE_HEX_MAX = 18;

/** Per-item verdicts of a text-patch batch, packed. */
export interface PackedItems {
  readonly count: number;
  /** 1 allowed, 0 denied, per item. */
  readonly ok: Uint8Array;
  /** Per item: a template index, or -1 when the reason is `text[i]`. */
  readonly template: Int32Array;
  /** Per item: the reason when it has no template. */
  readonly text: ReadonlyArray<string | undefined>;
  readonly templates: readonly ReasonTemplate[];
}

/** A verdict in packed form (what the ring carries; the link expands it into a protocol Verdict). */
export interface PackedVerdict {
  readonly id: number;
  readonly ok: boolean;
  readonly reason: string;
  readonly plugins: readonly string[];
  readonly items?: PackedItems;
}

/** The reason of item `i`; `siteHex(i)` prints the item's site as `hex()` does. */
export function itemReason(items: PackedItems, i: number, siteHex: (i: number) => string): string {
  const t = items.template[i] as number;
  if (t < 0) return items.text[i] ?? '';
  const tpl = items.templates[t]!;
  return tpl.prefix + siteHex(i) + tpl.suffix;
}

/** The protocol's per-item verdicts. */
export function expandItems(items: PackedItems, siteHex: (i: number) => string): Array<{ ok: boolean; reason: string }> {
  const out = new Array<{ ok: boolean; reason: string }>(items.count);
  for (let i = 0; i < items.count; i++) out[i] = { ok: items.ok[i] === 1, reason: itemReason(items, i, siteHex) };
  return out;
}

/** What {@link writeVerdict} did. */
export type WriteVerdictResult = 'written' | 'no-room' | 'too-large';

/**
 * Writes and publishes `v`, keeping `keep` bytes of the ring free. `too-large` when a string is
 * longer than the ring carries or the message is bigger than the ring; `no-room` when it does
 * not fit now. In both cases nothing is written: the verifier parks the verdict instead.
 */
export function writeVerdict(ring: SpscRing, v: PackedVerdict, keep = 0): WriteVerdictResult {
  const reasonLen = Buffer.byteLength(v.reason, 'utf8');
  if (reasonLen > RING_STRING_MAX || v.plugins.length > RING_MAX_PLUGINS) return 'too-large';
  let strings = reasonLen;
  const pluginLens = v.plugins.map((p) => Buffer.byteLength(p, 'utf8'));
  for (const n of pluginLens) {
    if (n > RING_STRING_MAX) return 'too-large';
    strings += 2 + n;
  }
  const items = v.items;
  const templates = items?.templates ?? [];
  if (templates.length > RING_MAX_TEMPLATES) return 'too-large';
  const tplLens: Array<[number, number]> = [];
  for (const t of templates) {
    const p = Buffer.byteLength(t.prefix, 'utf8');
    const s = Buffer.byteLength(t.suffix, 'utf8');
    // INVARIANT: an expanded reason is at most RING_STRING_MAX bytes, so it passes the
    // protocol's 4096-character bound, as every comlink verdict must.
    if (p + s + SITE_HEX_MAX > RING_STRING_MAX) return 'too-large';
    tplLens.push([p, s]);
    strings += 4 + p + s;
  }
  const count = items?.count ?? 0;
  let heap = 0;
  const textLens = new Uint32Array(count);
  if (items) {
    for (let i = 0; i < count; i++) {
      if ((items.template[i] as number) >= 0) continue;
      const n = Buffer.byteLength(items.text[i] ?? '', 'utf8');
      if (n > RING_STRING_MAX) return 'too-large';
      textLens[i] = n;
      heap += n;
    }
  }
  const itemsAt = VERDICT_HEADER + align8(strings);
  const heapAt = itemsAt + count * ITEM_RECORD;
  const size = heapAt + align8(heap);
  if (size > ring.capacity - keep) return 'too-large';
  const off = ring.reserve(size, keep);
  if (off < 0) return 'no-room';
  const { u8, u32, buf } = ring;
  const w = off >>> 2;
  u32[w] = VERDICT_MAGIC;
  u8[off + VD.VERSION] = PROTOCOL_VERSION;
  u8[off + VD.FLAGS] = (v.ok ? VERDICT_FLAG.OK : 0) | (items ? VERDICT_FLAG.ITEMS : 0);
  u8[off + VD.PLUGINS] = v.plugins.length & 0xff;
  u8[off + VD.PLUGINS + 1] = v.plugins.length >>> 8;
  ring.f64[(off + VD.ID) >>> 3] = v.id;
  u32[w + (VD.ITEMS >>> 2)] = count;
  u32[w + (VD.SIZE >>> 2)] = size;
  u32[w + (VD.REASON_LEN >>> 2)] = reasonLen;
  u32[w + (VD.TEMPLATES >>> 2)] = templates.length; // with RSV0 = 0 in the high half
  u32[w + (VD.STRINGS_LEN >>> 2)] = strings;
  u32[w + (VD.RSV1 >>> 2)] = 0;
  let p = off + VERDICT_HEADER;
  p += writeUtf8(buf, v.reason, p);
  v.plugins.forEach((name, k) => {
    const n = pluginLens[k]!;
    u8[p] = n & 0xff;
    u8[p + 1] = n >>> 8;
    p += 2 + writeUtf8(buf, name, p + 2);
  });
  templates.forEach((t, k) => {
    const [pl, sl] = tplLens[k]!;
    u8[p] = pl & 0xff;
    u8[p + 1] = pl >>> 8;
    u8[p + 2] = sl & 0xff;
    u8[p + 3] = sl >>> 8;
    p += 4;
    p += writeUtf8(buf, t.prefix, p);
    p += writeUtf8(buf, t.suffix, p);
  });
  u8.fill(0, p, off + itemsAt);
  if (items) {
    let iw = (off + itemsAt) >>> 2;
    let h = off + heapAt;
    const ok = items.ok;
    const tpl = items.template;
    const templateForm = ITEM_FORM.TEMPLATE << 8;
    for (let i = 0; i < count; i++, iw += 2) {
      const t = tpl[i] as number;
      if (t >= 0) {
        u32[iw] = (ok[i] as number) | templateForm;
        u32[iw + 1] = t;
      } else {
        u32[iw] = ok[i] as number;
        u32[iw + 1] = textLens[i] as number;
        h += writeUtf8(buf, items.text[i] ?? '', h);
      }
    }
    u8.fill(0, h, off + size);
  }
  ring.commit();
  return 'written';
}

/** Writes a "parked" verdict marker for request `id` (the verdict waits in the verifier). False when even that does not fit. */
export function writeParked(ring: SpscRing, id: number): boolean {
  const off = ring.reserve(VERDICT_HEADER);
  if (off < 0) return false;
  ring.u8.fill(0, off, off + VERDICT_HEADER);
  ring.u32[off >>> 2] = VERDICT_MAGIC;
  ring.u8[off + VD.VERSION] = PROTOCOL_VERSION;
  ring.u8[off + VD.FLAGS] = VERDICT_FLAG.PARKED;
  ring.f64[(off + VD.ID) >>> 3] = id;
  ring.u32[(off + VD.SIZE) >>> 2] = VERDICT_HEADER;
  ring.commit();
  return true;
}
