/**
 * The module's sections as placed: byte buffers at kernel virtual addresses, with lookups by
 * address. The relocation, mcount, jump-table and ksymtab readers work on this view, so they
 * read exactly what the module will hold in memory.
 */

/** One placed section's buffer. */
export interface PlacedBuffer {
  readonly shndx: number;
  readonly name: string;
  readonly addr: bigint;
  /** The section's bytes (a private copy; writers change it in place). */
  readonly bytes: Uint8Array;
  /** SHF_EXECINSTR. */
  readonly exec: boolean;
}

/** Where an address falls. */
export interface Location {
  readonly section: PlacedBuffer;
  /** Offset of the address inside the section. */
  readonly offset: number;
}

/** Placed section buffers, searchable by address. */
export class PlacedMemory {
  readonly #sorted: PlacedBuffer[];

  constructor(sections: readonly PlacedBuffer[]) {
    this.#sorted = sections.filter((s) => s.bytes.length > 0).sort((a, b) => (a.addr < b.addr ? -1 : a.addr > b.addr ? 1 : 0));
  }

  /** The section holding all of [addr, addr + len), or undefined. */
  locate(addr: bigint, len: number): Location | undefined {
    const s = this.#sorted;
    let lo = 0;
    let hi = s.length - 1;
    let found = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid]!.addr <= addr) {
        found = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    if (found < 0) return undefined;
    const sec = s[found]!;
    const off = addr - sec.addr;
    if (off + BigInt(len) > BigInt(sec.bytes.length)) return undefined;
    return { section: sec, offset: Number(off) };
  }

  /** `len` bytes at `addr` (a view into the section buffer), or undefined. */
  read(addr: bigint, len: number): Uint8Array | undefined {
    const l = this.locate(addr, len);
    return l ? l.section.bytes.subarray(l.offset, l.offset + len) : undefined;
  }
}

/** A DataView over a section buffer. */
export function viewOf(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
