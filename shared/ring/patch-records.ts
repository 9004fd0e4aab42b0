/**
 * A batch of text-patch items as fixed-size records (shared/ring/layout.ts {@link PR}): the
 * form the core builds from the guest's patch batch, the ring carries, and the verifier's
 * patch plugins read without making an object per item. {@link PatchRecords.toItems} gives
 * the protocol's {@link PatchItem} objects for every other path (comlink, the journal, a
 * plugin without a record fast path).
 */
import { PATCH_KIND, type PatchKindName } from '../heki-descriptors.ts';
import type { PatchItem } from '../protocol.ts';
import { PATCH_RECORD, PATCH_RECORD_MAX_LEN, PR, RING_MAX_RECORDS } from './layout.ts';

/** Patch kind names by code (PATCH_KIND's inverse). */
export const PATCH_KIND_NAMES: readonly PatchKindName[] = (() => {
  const names: PatchKindName[] = [];
  for (const [name, code] of Object.entries(PATCH_KIND)) names[code] = name as PatchKindName;
  return names;
})();

const TWO32 = 0x1_0000_0000;

/** `0x`-hex of the u64 `hi:lo`, exactly as shared/addr.ts `hex()` prints the bigint. */
export function hexU64(lo: number, hi: number): string {
  return hi === 0 ? `0x${lo.toString(16)}` : `0x${hi.toString(16)}${lo.toString(16).padStart(8, '0')}`;
}

/** Text-patch items in record form. */
export class PatchRecords {
  /** Number of records. */
  readonly count: number;
  /** The records, `count * PATCH_RECORD` bytes, 8-aligned. */
  readonly bytes: Uint8Array;
  readonly #u32: Uint32Array;

  /** Wraps existing record bytes (not copied). `bytes` must be 8-aligned and a whole number of records. */
  constructor(bytes: Uint8Array) {
    if (bytes.byteOffset % 8 !== 0 || bytes.length % PATCH_RECORD !== 0) throw new RangeError('patch records must be 8-aligned whole records');
    this.bytes = bytes;
    this.count = bytes.length / PATCH_RECORD;
    this.#u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2);
  }

  /** `count` zeroed records in fresh memory. */
  static alloc(count: number): PatchRecords {
    return new PatchRecords(new Uint8Array(count * PATCH_RECORD));
  }

  /**
   * Records for protocol items, or a string naming why they cannot be records (a patch
   * longer than {@link PATCH_RECORD_MAX_LEN} bytes, lengths that differ, too many items):
   * such a request goes over comlink, where the verifier's validator names the problem.
   */
  static fromItems(items: readonly PatchItem[]): PatchRecords | string {
    if (items.length > RING_MAX_RECORDS) return `${items.length} items, more than ${RING_MAX_RECORDS}`;
    const r = PatchRecords.alloc(items.length);
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (typeof it !== 'object' || it === null) return `item ${i}: not an object`;
      const code = Object.hasOwn(PATCH_KIND, it.kind) ? (PATCH_KIND as Record<string, number>)[it.kind] : undefined;
      if (code === undefined) return `item ${i}: unknown kind`;
      if (typeof it.site !== 'bigint' || it.site < 0n || it.site >= 1n << 64n) return `item ${i}: site is not a u64`;
      if (!(it.oldBytes instanceof Uint8Array) || !(it.newBytes instanceof Uint8Array) || !(it.currentBytes instanceof Uint8Array))
        return `item ${i}: bytes are not Uint8Arrays`;
      const len = it.oldBytes.length;
      if (len < 1 || len > PATCH_RECORD_MAX_LEN || it.newBytes.length !== len || it.currentBytes.length !== len)
        return `item ${i}: not 1..${PATCH_RECORD_MAX_LEN} bytes of equal length`;
      r.setSite(i, Number(it.site & 0xffff_ffffn), Number(it.site >> 32n));
      const o = i * PATCH_RECORD;
      r.bytes[o + PR.KIND] = code;
      r.bytes[o + PR.LEN] = len;
      r.bytes.set(it.oldBytes, o + PR.OLD);
      r.bytes.set(it.newBytes, o + PR.NEW);
      r.bytes.set(it.currentBytes, o + PR.CUR);
    }
    return r;
  }

  /** Sets record `i`'s site from its low and high 32 bits. */
  setSite(i: number, lo: number, hi: number): void {
    const w = (i * PATCH_RECORD) >>> 2;
    this.#u32[w] = lo;
    this.#u32[w + 1] = hi;
  }

  /** Low 32 bits of record `i`'s site. */
  siteLo(i: number): number {
    return this.#u32[(i * PATCH_RECORD) >>> 2] as number;
  }

  /** High 32 bits of record `i`'s site. */
  siteHi(i: number): number {
    return this.#u32[((i * PATCH_RECORD) >>> 2) + 1] as number;
  }

  /** Record `i`'s site. */
  site(i: number): bigint {
    return (BigInt(this.siteHi(i)) << 32n) | BigInt(this.siteLo(i));
  }

  /** Record `i`'s site as `0x`-hex (what `hex(site)` prints). */
  siteHex(i: number): string {
    return hexU64(this.siteLo(i), this.siteHi(i));
  }

  /** Kind code of record `i`. */
  kindCode(i: number): number {
    return this.bytes[i * PATCH_RECORD + PR.KIND] as number;
  }

  /** Patch length of record `i`. */
  len(i: number): number {
    return this.bytes[i * PATCH_RECORD + PR.LEN] as number;
  }

  /** Byte offset of record `i`. */
  offset(i: number): number {
    return i * PATCH_RECORD;
  }

  /**
   * The first problem with the records, or undefined: a kind code that is not a patch kind, a
   * length outside 1..8, a reserved byte or a byte beyond the length that is not zero.
   * Records built by this class's setters pass; records from elsewhere are checked before use.
   */
  validate(): string | undefined {
    const b = this.bytes;
    for (let i = 0; i < this.count; i++) {
      const o = i * PATCH_RECORD;
      const kind = b[o + PR.KIND] as number;
      if (kind >= PATCH_KIND_NAMES.length) return `record ${i}: unknown patch kind code ${kind}`;
      const len = b[o + PR.LEN] as number;
      if (len < 1 || len > PATCH_RECORD_MAX_LEN) return `record ${i}: patch length ${len} is not 1..${PATCH_RECORD_MAX_LEN}`;
      for (let k = PR.PAD; k < PR.OLD; k++) if (b[o + k] !== 0) return `record ${i}: reserved byte ${k} is not zero`;
      for (let k = len; k < PATCH_RECORD_MAX_LEN; k++) {
        if (b[o + PR.OLD + k] !== 0) return `record ${i}: old byte ${k} lies beyond the patch length ${len} and is not zero`;
        if (b[o + PR.NEW + k] !== 0) return `record ${i}: new byte ${k} lies beyond the patch length ${len} and is not zero`;
        if (b[o + PR.CUR + k] !== 0) return `record ${i}: current byte ${k} lies beyond the patch length ${len} and is not zero`;
      }
    }
    return undefined;
  }

  /** Number of records of each kind code. */
  kindCounts(): number[] {
    const counts = new Array<number>(PATCH_KIND_NAMES.length).fill(0);
    for (let i = 0; i < this.count; i++) {
      const k = this.kindCode(i);
      counts[k] = (counts[k] ?? 0) + 1;
    }
    return counts;
  }

  /** Record `i` as a protocol item (copies of its bytes). Assumes {@link validate} passed. */
  item(i: number): PatchItem {
    const o = i * PATCH_RECORD;
    const len = this.len(i);
    return {
      kind: PATCH_KIND_NAMES[this.kindCode(i)] as PatchKindName,
      site: this.site(i),
      oldBytes: this.bytes.slice(o + PR.OLD, o + PR.OLD + len),
      newBytes: this.bytes.slice(o + PR.NEW, o + PR.NEW + len),
      currentBytes: this.bytes.slice(o + PR.CUR, o + PR.CUR + len),
    };
  }

  /** Every record as a protocol item. */
  toItems(): PatchItem[] {
    return Array.from({ length: this.count }, (_, i) => this.item(i));
  }

  /** A copy of the records in memory of their own. */
  copy(): PatchRecords {
    return new PatchRecords(this.bytes.slice());
  }
}

/** The u64 `hi:lo + delta` (delta a safe integer), as [lo, hi] wrapped modulo 2^64. */
export function addU64(lo: number, hi: number, delta: number): [number, number] {
  const t = lo + delta;
  const carry = Math.floor(t / TWO32);
  return [t - carry * TWO32, (((hi + carry) % TWO32) + TWO32) % TWO32];
}
