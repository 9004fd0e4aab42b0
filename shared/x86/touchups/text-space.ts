/**
 * The code the touch-ups rewrite, as the kernel sees it: byte ranges at kernel virtual
 * addresses. Each region is a writable copy (the guest's copy of its own text, or the
 * verifier's prediction), so a pass writes exactly where `text_poke_early()` would.
 *
 * Addresses are bigint (kernel virtual addresses exceed 2^53); offsets inside a region are
 * numbers. A site outside every region is skipped by the passes the way the kernel never
 * reaches it: a site in a section nobody keeps (an init section already gone, a module
 * section that was not loaded).
 */

/** One contiguous range of code or data at `base`. */
export interface TextRegion {
  /** A name for messages (`.text`, `kvm .text`). */
  readonly name: string;
  /** Kernel virtual address of `bytes[0]`. */
  readonly base: bigint;
  /** The bytes, written in place by the passes. */
  readonly bytes: Uint8Array;
}

/** Where a kernel virtual address falls: a region and the offset in it. */
export interface Located {
  readonly region: TextRegion;
  readonly offset: number;
}

/** Regions sorted by address, with lookups by address. */
export class TextSpace {
  readonly regions: readonly TextRegion[];
  private readonly ends: readonly bigint[];
  /** The region the last lookup hit: sites come in address order, so most lookups hit it again. */
  private last = 0;

  constructor(regions: readonly TextRegion[]) {
    this.regions = [...regions].sort((a, b) => (a.base < b.base ? -1 : a.base > b.base ? 1 : 0));
    this.ends = this.regions.map((r) => r.base + BigInt(r.bytes.length));
    for (let i = 1; i < this.regions.length; i++) {
      if (this.ends[i - 1]! > this.regions[i]!.base)
        throw new Error(`INVARIANT: text regions ${this.regions[i - 1]!.name} and ${this.regions[i]!.name} overlap`);
    }
  }

  /** The region holding `[addr, addr + len)`, or undefined when no single region does. */
  locate(addr: bigint, len = 1): Located | undefined {
    const rs = this.regions;
    let i = this.last;
    const hit = rs[i];
    if (!hit || addr < hit.base || addr >= this.ends[i]!) {
      i = -1;
      let lo = 0;
      let hi = rs.length - 1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (addr < rs[mid]!.base) hi = mid - 1;
        else if (addr >= this.ends[mid]!) lo = mid + 1;
        else {
          i = mid;
          break;
        }
      }
      if (i < 0) return undefined;
      this.last = i;
    }
    const r = rs[i]!;
    const offset = Number(addr - r.base);
    return offset + len <= r.bytes.length ? { region: r, offset } : undefined;
  }

  /** A view of `len` bytes at `addr`, or undefined outside the regions. */
  view(addr: bigint, len: number): Uint8Array | undefined {
    const at = this.locate(addr, len);
    return at ? at.region.bytes.subarray(at.offset, at.offset + len) : undefined;
  }

  /** Writes `bytes` at `addr` (`text_poke_early`); false when outside the regions. */
  write(addr: bigint, bytes: Uint8Array): boolean {
    const at = this.locate(addr, bytes.length);
    if (!at) return false;
    at.region.bytes.set(bytes, at.offset);
    return true;
  }
}

/** `__text_gen_insn(buf, op, addr, dest, 5)`: `op rel32` from `addr` to `dest`. */
export function genRel32(op: number, addr: bigint, dest: bigint): Uint8Array {
  const out = new Uint8Array(5);
  out[0] = op;
  // The low 32 bits of the difference, as s32 (BigInt.asIntN(32, ...)).
  writeS32(out, 1, Number((dest - addr - 5n) & 0xffff_ffffn) | 0);
  return out;
}

/** The s32 at `bytes[at]`. */
export function readS32(bytes: Uint8Array, at: number): number {
  return bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16) | (bytes[at + 3]! << 24) | 0;
}

/** Writes the s32 `v` at `bytes[at]`. */
export function writeS32(bytes: Uint8Array, at: number, v: number): void {
  bytes[at] = v & 0xff;
  bytes[at + 1] = (v >>> 8) & 0xff;
  bytes[at + 2] = (v >>> 16) & 0xff;
  bytes[at + 3] = (v >>> 24) & 0xff;
}
