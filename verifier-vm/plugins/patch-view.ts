/**
 * One view of a text-patch item for the patch plugins' checks, whether the item came as a
 * protocol object ({@link ItemView}) or as a record of a batch ({@link RecordCursor}, no
 * object per item). A check written against {@link PatchView} runs unchanged on both paths,
 * which is what keeps the ring's verdicts equal to comlink's.
 *
 * A check reports through an {@link ItemSink}: a text reason, or a reason around the site
 * (`prefix + hex(site) + suffix`) that a record batch keeps as a template.
 */
import { hex } from '../../shared/addr.ts';
import { reportItemProgress } from '../../shared/progress.ts';
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { PATCH_RECORD, PR } from '../../shared/ring/layout.ts';
import type { PatchRecords } from '../../shared/ring/patch-records.ts';
import type { ItemDecisions } from '../plugin-api.ts';

/** A text-patch item as the checks read it. Byte accessors take an index below `len`. */
export interface PatchView {
  readonly kindCode: number;
  readonly site: bigint;
  readonly siteLo: number;
  readonly siteHi: number;
  /** Length of old, new and current bytes (validated equal on both paths). */
  readonly len: number;
  old(j: number): number;
  neu(j: number): number;
  cur(j: number): number;
  /** Copies, for messages. */
  oldBytes(): Uint8Array;
  newBytes(): Uint8Array;
  curBytes(): Uint8Array;
}

/** A protocol item as a {@link PatchView}. */
export class ItemView implements PatchView {
  readonly kindCode: number;
  readonly site: bigint;
  readonly siteLo: number;
  readonly siteHi: number;
  readonly len: number;
  constructor(private readonly item: PatchItem) {
    this.kindCode = PATCH_KIND[item.kind];
    this.site = item.site;
    this.siteLo = Number(item.site & 0xffff_ffffn);
    this.siteHi = Number((item.site >> 32n) & 0xffff_ffffn);
    this.len = item.oldBytes.length;
  }
  old(j: number): number {
    return this.item.oldBytes[j] as number;
  }
  neu(j: number): number {
    return this.item.newBytes[j] as number;
  }
  cur(j: number): number {
    return this.item.currentBytes[j] as number;
  }
  oldBytes(): Uint8Array {
    return this.item.oldBytes;
  }
  newBytes(): Uint8Array {
    return this.item.newBytes;
  }
  curBytes(): Uint8Array {
    return this.item.currentBytes;
  }
}

/** A cursor over the records of a batch: {@link at} moves it; no object per item. */
export class RecordCursor implements PatchView {
  kindCode = 0;
  siteLo = 0;
  siteHi = 0;
  len = 0;
  #o = 0;
  #site: bigint | undefined;
  readonly #b: Uint8Array;
  readonly #u32: Uint32Array;
  constructor(readonly records: PatchRecords) {
    this.#b = records.bytes;
    this.#u32 = new Uint32Array(records.bytes.buffer, records.bytes.byteOffset, records.bytes.length >>> 2);
  }
  /** Moves to record `i` (reporting progress every PROGRESS_ITEM_CHUNK records: shared/progress.ts). */
  at(i: number): this {
    reportItemProgress(i);
    const o = i * PATCH_RECORD;
    this.#o = o;
    this.kindCode = this.#b[o + PR.KIND] as number;
    this.len = this.#b[o + PR.LEN] as number;
    this.siteLo = this.#u32[o >>> 2] as number;
    this.siteHi = this.#u32[(o >>> 2) + 1] as number;
    this.#site = undefined;
    return this;
  }
  /** The site as a bigint, made only when a check needs one (a module's site, a message). */
  get site(): bigint {
    return (this.#site ??= u64(this.siteLo, this.siteHi));
  }
  old(j: number): number {
    return this.#b[this.#o + PR.OLD + j] as number;
  }
  neu(j: number): number {
    return this.#b[this.#o + PR.NEW + j] as number;
  }
  cur(j: number): number {
    return this.#b[this.#o + PR.CUR + j] as number;
  }
  oldBytes(): Uint8Array {
    return this.#b.slice(this.#o + PR.OLD, this.#o + PR.OLD + this.len);
  }
  newBytes(): Uint8Array {
    return this.#b.slice(this.#o + PR.NEW, this.#o + PR.NEW + this.len);
  }
  curBytes(): Uint8Array {
    return this.#b.slice(this.#o + PR.CUR, this.#o + PR.CUR + this.len);
  }
}

/** Where a check reports one item's decision. */
export interface ItemSink {
  allow(reason: string): void;
  deny(reason: string): void;
  /** Allowed because of `prefix + hex(site) + suffix`. */
  allowAround(prefix: string, suffix: string): void;
}

/** A sink that keeps the last decision as text (the protocol-item path). */
export class TextSink implements ItemSink {
  decision: 'allow' | 'deny' = 'deny';
  reason = '';
  constructor(private readonly site: bigint) {}
  allow(reason: string): void {
    this.decision = 'allow';
    this.reason = reason;
  }
  deny(reason: string): void {
    this.decision = 'deny';
    this.reason = reason;
  }
  allowAround(prefix: string, suffix: string): void {
    this.allow(prefix + hex(this.site) + suffix);
  }
}

/** A sink that writes into a record batch's {@link ItemDecisions}, at the item set by {@link at}. */
export class DecisionSink implements ItemSink {
  #i = 0;
  #lastPrefix = '';
  #lastSuffix = '';
  #lastTemplate = -1;
  constructor(private readonly out: ItemDecisions) {}
  at(i: number): this {
    this.#i = i;
    return this;
  }
  allow(reason: string): void {
    this.out.set(this.#i, 'allow', reason);
  }
  deny(reason: string): void {
    this.out.set(this.#i, 'deny', reason);
  }
  allowAround(prefix: string, suffix: string): void {
    // Consecutive items usually share their template: skip the interning lookup then.
    if (this.#lastTemplate < 0 || prefix !== this.#lastPrefix || suffix !== this.#lastSuffix) {
      this.#lastTemplate = this.out.templateId(prefix, suffix);
      this.#lastPrefix = prefix;
      this.#lastSuffix = suffix;
    }
    this.out.setTemplate(this.#i, 'allow', this.#lastTemplate);
  }
}

/** True when `view`'s old bytes equal its current bytes. */
export function oldMatchesMemory(view: PatchView): boolean {
  for (let j = 0; j < view.len; j++) if (view.old(j) !== view.cur(j)) return false;
  return true;
}

/** True when `view`'s new bytes are `bytes`. */
export function newBytesAre(view: PatchView, bytes: Readonly<Uint8Array>): boolean {
  if (view.len !== bytes.length) return false;
  for (let j = 0; j < bytes.length; j++) if (view.neu(j) !== bytes[j]) return false;
  return true;
}

/** The signed 32-bit little-endian value at new bytes 1..4 (a rel32 operand). */
export function newRel32(view: PatchView): number {
  return view.neu(1) | (view.neu(2) << 8) | (view.neu(3) << 16) | (view.neu(4) << 24);
}

/**
 * The target `site + len + rel` of a relative instruction (mod 2^64), in {@link relTargetLo}
 * and {@link relTargetHi} (no array per item on the volume path).
 */
export function relTarget(view: PatchView, len: number, rel: number): void {
  // siteLo < 2^32 and |len + rel| <= 2^31 + 5, so the carry is -1, 0 or 1.
  const t = view.siteLo + len + rel;
  const carry = t < 0 ? -1 : t >= TWO32 ? 1 : 0;
  relTargetLo = t - carry * TWO32;
  relTargetHi = (view.siteHi + carry) >>> 0;
}
const TWO32 = 0x1_0000_0000;
/** Low 32 bits of the last {@link relTarget}. */
export let relTargetLo = 0;
/** High 32 bits of the last {@link relTarget}. */
export let relTargetHi = 0;

/** `[lo, hi]` as a bigint. */
export function u64(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}
