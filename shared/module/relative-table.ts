/**
 * A table of self-relative entries (`__jump_table`'s `struct jump_entry`,
 * `.static_call_sites`' `struct static_call_site`), decoded to the absolute address each
 * field points at, sorted the way the kernel sorts it in place, and written back relative to
 * each field's new position (jump_label_swap(), static_call_site_swap()).
 *
 * Every field is a u64 address held as two 32-bit halves in typed arrays: the arithmetic is
 * exact modulo 2^64 (as the kernel's `long` arithmetic) without a bigint per field, and the
 * sort compares halves. The last field of an entry is a key whose low two bits are flags,
 * kept apart.
 */
import type { PlacedBuffer } from './placed-memory.ts';
import { viewOf } from './placed-memory.ts';
import { linuxSort } from './linux-sort.ts';

/** One field of an entry: its offset in the entry and its width (s32 or s64). */
export interface RelativeField {
  readonly off: number;
  readonly size: 4 | 8;
}

const TWO32 = 0x1_0000_0000;

/** A decoded self-relative table over a placed section. */
export class RelativeTable {
  /** Number of whole entries. */
  readonly length: number;
  readonly #buf: PlacedBuffer;
  readonly #entrySize: number;
  readonly #layout: readonly RelativeField[];
  readonly #nf: number;
  /** Each field's own address (`base + i * entrySize + off`), in halves, at `i * nf + j`. */
  readonly #posLo: Uint32Array;
  readonly #posHi: Uint32Array;
  /** Field `j` of entry `i` at `i * nf + j`: the absolute address's halves (the key's flags stripped). */
  #lo: Uint32Array;
  #hi: Uint32Array;
  /** The low two bits of each entry's last field. */
  #flags: Uint8Array;

  /** Decodes the whole entries of `buf` (a trailing partial entry is ignored, as the kernel's loops do). */
  constructor(buf: PlacedBuffer, entrySize: number, layout: readonly RelativeField[]) {
    this.#buf = buf;
    this.#entrySize = entrySize;
    this.#layout = layout;
    const nf = layout.length;
    this.#nf = nf;
    const n = Math.floor(buf.bytes.length / entrySize);
    this.length = n;
    const baseLo = Number(buf.addr & 0xffff_ffffn);
    const baseHi = Number((buf.addr >> 32n) & 0xffff_ffffn);
    this.#posLo = new Uint32Array(n * nf);
    this.#posHi = new Uint32Array(n * nf);
    for (let k = 0; k < n * nf; k++) {
      const lo = baseLo + Math.floor(k / nf) * entrySize + layout[k % nf]!.off;
      const carry = lo >= TWO32 ? 1 : 0; // a section is far smaller than 2^32 bytes
      this.#posLo[k] = lo - carry * TWO32;
      this.#posHi[k] = (baseHi + carry) >>> 0;
    }
    this.#lo = new Uint32Array(n * nf);
    this.#hi = new Uint32Array(n * nf);
    this.#flags = new Uint8Array(n);
    this.decode();
  }

  /** Reads every field from the section's bytes again (after {@link write}, to see what an s32 kept). */
  decode(): void {
    const dv = viewOf(this.#buf.bytes);
    const nf = this.#nf;
    const last = nf - 1;
    for (let i = 0; i < this.length; i++) {
      for (let j = 0; j < nf; j++) {
        const f = this.#layout[j]!;
        const at = i * this.#entrySize + f.off;
        const k = i * nf + j;
        // abs = (field address) + rel (mod 2^64), in halves with a carry.
        let lo: number;
        let hi: number;
        if (f.size === 4) {
          const rel = dv.getInt32(at, true);
          lo = this.#posLo[k]! + (rel >>> 0);
          hi = this.#posHi[k]! + (rel < 0 ? 0xffff_ffff : 0);
        } else {
          lo = this.#posLo[k]! + dv.getUint32(at, true);
          hi = this.#posHi[k]! + dv.getUint32(at + 4, true);
        }
        if (lo >= TWO32) {
          lo -= TWO32;
          hi += 1;
        }
        if (j === last) {
          this.#flags[i] = lo & 3;
          lo -= lo & 3;
        }
        this.#lo[k] = lo;
        this.#hi[k] = hi >>> 0;
      }
    }
  }

  /** Field `j` of entry `i`, absolute (flags stripped for the key). */
  field(i: number, j: number): bigint {
    const k = i * this.#nf + j;
    return (BigInt(this.#hi[k]!) << 32n) | BigInt(this.#lo[k]!);
  }

  /** Sets field `j` of entry `i` to the absolute address `abs` (mod 2^64; for the key, without flags). */
  setField(i: number, j: number, abs: bigint): void {
    const k = i * this.#nf + j;
    this.#lo[k] = Number(abs & 0xffff_ffffn);
    this.#hi[k] = Number((abs >> 32n) & 0xffff_ffffn);
  }

  /** The low two bits of entry `i`'s key. */
  flags(i: number): number {
    return this.#flags[i]!;
  }

  setFlags(i: number, flags: number): void {
    this.#flags[i] = flags & 3;
  }

  /**
   * Sorts the entries as lib/sort.c's heapsort orders them, by the key (the last field) and,
   * when `thenSite`, by the first field (jump_label_cmp()); by the key alone otherwise
   * (static_call_site_cmp()). Fields are compared as unsigned 64-bit addresses.
   */
  sort(thenSite: boolean): void {
    const nf = this.#nf;
    const lo = this.#lo;
    const hi = this.#hi;
    const key = nf - 1;
    const order = Array.from({ length: this.length }, (_, i) => i);
    linuxSort(order, (a, b) => {
      const ka = a * nf + key;
      const kb = b * nf + key;
      if (hi[ka] !== hi[kb]) return hi[ka]! < hi[kb]! ? -1 : 1;
      if (lo[ka] !== lo[kb]) return lo[ka]! < lo[kb]! ? -1 : 1;
      if (!thenSite) return 0;
      const sa = a * nf;
      const sb = b * nf;
      if (hi[sa] !== hi[sb]) return hi[sa]! < hi[sb]! ? -1 : 1;
      return lo[sa] === lo[sb] ? 0 : lo[sa]! < lo[sb]! ? -1 : 1;
    });
    const nlo = new Uint32Array(lo.length);
    const nhi = new Uint32Array(hi.length);
    const nflags = new Uint8Array(this.length);
    for (let i = 0; i < order.length; i++) {
      const from = order[i]!;
      for (let j = 0; j < nf; j++) {
        nlo[i * nf + j] = lo[from * nf + j]!;
        nhi[i * nf + j] = hi[from * nf + j]!;
      }
      nflags[i] = this.#flags[from]!;
    }
    this.#lo = nlo;
    this.#hi = nhi;
    this.#flags = nflags;
  }

  /** Writes every entry back at its index, each field relative to its own address (an s32 field keeps the low 32 bits). */
  write(): void {
    const dv = viewOf(this.#buf.bytes);
    const nf = this.#nf;
    const last = nf - 1;
    for (let k = 0; k < this.length * nf; k++) {
      const i = Math.floor(k / nf);
      const j = k - i * nf;
      const f = this.#layout[j]!;
      const at = i * this.#entrySize + f.off;
      // rel = abs - (field address) (mod 2^64), in halves with a borrow.
      let lo = this.#lo[k]! + (j === last ? this.#flags[i]! : 0) - this.#posLo[k]!;
      let hi = this.#hi[k]! - this.#posHi[k]!;
      if (lo < 0) {
        lo += TWO32;
        hi -= 1;
      }
      if (f.size === 4) dv.setInt32(at, lo | 0, true);
      else {
        dv.setUint32(at, lo, true);
        dv.setUint32(at + 4, hi >>> 0, true);
      }
    }
  }
}
