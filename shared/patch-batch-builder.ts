/**
 * Builds a text-patch batch (the layout of shared/heki-descriptors.ts) entry by entry, straight
 * into its bytes: what `encodePatchBatch` makes from an array of {@link PatchRequest} objects,
 * without the objects. The guest's ftrace writes 38,252 entries this way when it traces every
 * function, as Linux's ftrace walks its `dyn_ftrace` records rather than allocating per site.
 */
import {
  PATCH_BATCH_HEADER,
  PATCH_BATCH_MAGIC,
  PATCH_BATCH_MAX,
  PATCH_ENTRY,
  PATCH_KIND,
  PATCH_STATUS,
  type PatchKindName,
  type PatchRequest,
} from './heki-descriptors.ts';

const KIND_NAMES: readonly PatchKindName[] = (() => {
  const names: PatchKindName[] = [];
  for (const [name, code] of Object.entries(PATCH_KIND)) names[code] = name as PatchKindName;
  return names;
})();

/** A text-patch batch under construction. */
export class PatchBatchBuilder {
  /** Header and `capacity` entries. */
  readonly #bytes: Uint8Array;
  readonly #dv: DataView;
  readonly #capacity: number;
  #count = 0;

  /** Room for `capacity` entries. */
  constructor(capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 0) throw new RangeError(`batch capacity ${capacity} is not a non-negative integer`);
    this.#capacity = capacity;
    this.#bytes = new Uint8Array(PATCH_BATCH_HEADER + capacity * PATCH_ENTRY);
    this.#dv = new DataView(this.#bytes.buffer);
  }

  /** Entries added. */
  get count(): number {
    return this.#count;
  }

  /**
   * Adds a patch; `oldBytes` and `newBytes` are copied. Throws RangeError, as
   * `encodePatchBatch` does, for lengths that are not 1..8 and equal, or a full builder.
   */
  add(kind: PatchKindName, site: bigint, oldBytes: Readonly<Uint8Array>, newBytes: Readonly<Uint8Array>): void {
    const i = this.#count;
    if (i >= this.#capacity) throw new RangeError(`the batch builder holds ${this.#capacity} patches`);
    const len = oldBytes.length;
    if (newBytes.length !== len || len < 1 || len > 8) throw new RangeError(`patch ${i}: old and new must be 1..8 bytes of equal length`);
    const o = PATCH_BATCH_HEADER + i * PATCH_ENTRY;
    const b = this.#bytes;
    this.#dv.setBigUint64(o, site, true);
    b[o + 8] = len;
    b[o + 9] = PATCH_KIND[kind];
    b[o + 10] = PATCH_STATUS.PENDING;
    for (let k = 0; k < len; k++) {
      b[o + 16 + k] = oldBytes[k] as number;
      b[o + 24 + k] = newBytes[k] as number;
    }
    this.#count = i + 1;
  }

  /** The site of entry `i`. */
  site(i: number): bigint {
    return this.#dv.getBigUint64(PATCH_BATCH_HEADER + i * PATCH_ENTRY, true);
  }

  /**
   * The encoded batch of entries [start, end) (at most PATCH_BATCH_MAX), as
   * `encodePatchBatch` would encode them. The whole batch is a view (no copy); a part is copied.
   */
  batch(start = 0, end = this.#count): Uint8Array {
    const n = end - start;
    if (start < 0 || end > this.#count || n < 0) throw new RangeError(`entries [${start}, ${end}) are not in [0, ${this.#count})`);
    if (n > PATCH_BATCH_MAX) throw new RangeError(`a batch holds at most ${PATCH_BATCH_MAX} patches`);
    let out: Uint8Array;
    if (start === 0) {
      out = this.#bytes.subarray(0, PATCH_BATCH_HEADER + n * PATCH_ENTRY);
    } else {
      out = new Uint8Array(PATCH_BATCH_HEADER + n * PATCH_ENTRY);
      out.set(this.#bytes.subarray(PATCH_BATCH_HEADER + start * PATCH_ENTRY, PATCH_BATCH_HEADER + end * PATCH_ENTRY), PATCH_BATCH_HEADER);
    }
    const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
    dv.setBigUint64(0, PATCH_BATCH_MAGIC, true);
    dv.setBigUint64(8, BigInt(n), true);
    return out;
  }

  /** Entries [start, end) as request objects (for a backend that takes those). */
  requests(start = 0, end = this.#count): PatchRequest[] {
    const out: PatchRequest[] = [];
    for (let i = start; i < end; i++) {
      const o = PATCH_BATCH_HEADER + i * PATCH_ENTRY;
      const len = this.#bytes[o + 8] as number;
      out.push({
        kind: KIND_NAMES[this.#bytes[o + 9] as number] as PatchKindName,
        site: this.site(i),
        oldBytes: this.#bytes.slice(o + 16, o + 16 + len),
        newBytes: this.#bytes.slice(o + 24, o + 24 + len),
      });
    }
    return out;
  }
}
