/**
 * The guest kernel's page-table writer: builds x86-64 4-level page tables in guest memory,
 * as arch/x86/mm/init_64.c and ident_map.c do at boot. It writes through a
 * {@link PhysPort}: at early boot that is the vCPU with paging off (virtual = physical);
 * later it is the kernel's direct map. Table pages come from a {@link FrameAllocator}.
 *
 * Entry bits (SDM 4.5, Linux's _PAGE_*): P, RW, US, PWT, PCD, A, D, PS, G, NX.
 */
import { PTE, PTE_ADDR_MASK } from '../../shared/x86/cpu.ts';

/** The entry bits and address mask (defined once, in shared/x86/cpu.ts). */
export { PTE, PTE_ADDR_MASK };

/**
 * Accessed and dirty, preset by Linux in every table entry it writes (_KERNPG_TABLE and
 * _PAGE_TABLE) and in every kernel leaf (__PAGE_KERNEL*, arch/x86/include/asm/
 * pgtable_types.h), so the CPU never has to write them there (docs/mmu.md). The writer
 * sets them in the table entries it makes; kernel callers add them to their leaf flags.
 */
export const PTE_AD = PTE.A | PTE.D;

/** How the writer reaches physical memory. Failures are reported, never thrown. */
export interface PhysPort {
  readU64(pa: bigint): bigint | undefined;
  writeU64(pa: bigint, value: bigint): boolean;
  /** Writes a whole page-table page (4 KiB at a page-aligned `pa`); without it, 512 `writeU64`s. */
  writePage?(pa: bigint, bytes: Uint8Array): boolean;
}

/** Hands out zeroed physical frames for page tables. */
export interface FrameAllocator {
  /** A page-aligned physical address of a zeroed frame, or undefined when out of frames. */
  allocTableFrame(): bigint | undefined;
}

/** Why a mapping could not be written. */
export type MapError =
  | { kind: 'out-of-frames' }
  | { kind: 'memory'; pa: bigint }
  /** `cause` says what is in the way (the walk reads it; `detail` is for messages). */
  | { kind: 'conflict'; va: bigint; level: number; cause: 'not-mapped' | 'no-entry' | 'large-page'; detail: string };

/** Mapping size: 4 KiB (level 1), 2 MiB (level 2), 1 GiB (level 3). */
export type MapLevel = 1 | 2 | 3;

/** A writer for one set of tables rooted at `root` (what goes into CR3). */
export class PageTableWriter {
  constructor(
    readonly root: bigint,
    private readonly port: PhysPort,
    private readonly frames: FrameAllocator,
  ) {}

  /**
   * Maps `va` to `pa` with `flags` (P is added; PS too for levels 2 and 3). Intermediate
   * entries are created P|RW|A|D (and US when `flags` has US), as Linux does: the leaf decides.
   */
  map(va: bigint, pa: bigint, flags: bigint, level: MapLevel = 1): MapError | undefined {
    const slot = this.#slot(va, level, true, (flags & PTE.US) !== 0n);
    if (typeof slot !== 'bigint') return slot;
    const leaf = pa | flags | PTE.P | (level > 1 ? PTE.PS : 0n);
    return this.port.writeU64(slot, leaf) ? undefined : { kind: 'memory', pa: slot };
  }

  /**
   * Maps the 2 MiB at `va` (2 MiB-aligned) by a new table of 512 4 KiB leaves, `leaf(i)`
   * giving the i-th one's address and flags (P is added), replacing whatever entry maps it
   * at level 2, as split_large_page() and populate_pte() do: the table is filled first,
   * with one write of its page, then the level-2 entry points at it. The tables above are
   * created as {@link map} creates them. The end state is that of zeroing the level-2 entry
   * and mapping the 512 pages one by one, in 517 fewer accesses.
   */
  mapTable(va: bigint, leaf: (i: number) => bigint): MapError | undefined {
    const slot = this.#slot(va, 2, true, false);
    if (typeof slot !== 'bigint') return slot;
    const table = this.frames.allocTableFrame();
    if (table === undefined) return { kind: 'out-of-frames' };
    if (this.port.writePage) {
      const page = new Uint8Array(4096);
      const view = new DataView(page.buffer);
      for (let i = 0; i < 512; i++) view.setBigUint64(i * 8, leaf(i) | PTE.P, true);
      if (!this.port.writePage(table, page)) return { kind: 'memory', pa: table };
    } else {
      for (let i = 0; i < 512; i++) if (!this.port.writeU64(table + BigInt(i) * 8n, leaf(i) | PTE.P)) return { kind: 'memory', pa: table + BigInt(i) * 8n };
    }
    return this.port.writeU64(slot, table | PTE.P | PTE.RW | PTE_AD) ? undefined : { kind: 'memory', pa: slot };
  }

  /** Changes the flags of an existing 4 KiB leaf (keeps the address). */
  protect(va: bigint, flags: bigint): MapError | undefined {
    const slot = this.#slot(va, 1, false, false);
    if (typeof slot !== 'bigint') return slot;
    const e = this.port.readU64(slot);
    if (e === undefined) return { kind: 'memory', pa: slot };
    if ((e & PTE.P) === 0n) return { kind: 'conflict', va, level: 1, cause: 'not-mapped', detail: 'not mapped' };
    return this.port.writeU64(slot, (e & PTE_ADDR_MASK) | flags | PTE.P) ? undefined : { kind: 'memory', pa: slot };
  }

  /** Clears the 4 KiB leaf of `va`. */
  unmap(va: bigint): MapError | undefined {
    const slot = this.#slot(va, 1, false, false);
    if (typeof slot !== 'bigint') return slot;
    return this.port.writeU64(slot, 0n) ? undefined : { kind: 'memory', pa: slot };
  }

  /**
   * Splits the large page (2 MiB or 1 GiB) that maps `va`, if any, into a table of smaller
   * entries with the same flags, down to 4 KiB, as CPA's split_large_page() does before it
   * changes the protection of part of a large mapping. No-op when `va` is mapped by 4 KiB.
   */
  splitToPage(va: bigint): MapError | undefined {
    for (let level = 3; level >= 2; level--) {
      const slot = this.#slot(va, level as MapLevel, false, false);
      if (typeof slot !== 'bigint') {
        if (slot.kind === 'conflict' && slot.cause === 'large-page') continue;
        return slot;
      }
      const e = this.port.readU64(slot);
      if (e === undefined) return { kind: 'memory', pa: slot };
      if ((e & PTE.P) === 0n || (e & PTE.PS) === 0n) continue;
      const table = this.frames.allocTableFrame();
      if (table === undefined) return { kind: 'out-of-frames' };
      const step = 1n << BigInt(12 + 9 * (level - 2));
      const base = e & PTE_ADDR_MASK & ~((1n << BigInt(12 + 9 * (level - 1))) - 1n);
      const flags = e & ~PTE_ADDR_MASK & ~(level === 2 ? PTE.PS : 0n);
      for (let i = 0n; i < 512n; i++) {
        if (!this.port.writeU64(table + i * 8n, (base + i * step) | flags)) return { kind: 'memory', pa: table + i * 8n };
      }
      if (!this.port.writeU64(slot, table | PTE.P | PTE.RW | PTE_AD | (e & PTE.US))) return { kind: 'memory', pa: slot };
    }
    return undefined;
  }

  /** The physical address of the entry that maps `va` at `level` (4 KiB leaves: level 1). */
  entryAddress(va: bigint, level: MapLevel = 1): bigint | MapError {
    return this.#slot(va, level, false, false);
  }

  /** Reads the leaf entry of `va` at `level`, or undefined when a level is missing. */
  lookup(va: bigint, level: MapLevel = 1): bigint | undefined {
    const slot = this.#slot(va, level, false, false);
    return typeof slot === 'bigint' ? this.port.readU64(slot) : undefined;
  }

  #slot(va: bigint, level: MapLevel, create: boolean, user: boolean): bigint | MapError {
    let table = this.root;
    for (let l = 4; l > level; l--) {
      const slot = table + ((va >> BigInt(12 + 9 * (l - 1))) & 0x1ffn) * 8n;
      let e = this.port.readU64(slot);
      if (e === undefined) return { kind: 'memory', pa: slot };
      if ((e & PTE.P) === 0n) {
        if (!create) return { kind: 'conflict', va, level: l, cause: 'no-entry', detail: `no level-${l} entry` };
        const t = this.frames.allocTableFrame();
        if (t === undefined) return { kind: 'out-of-frames' };
        e = t | PTE.P | PTE.RW | PTE_AD | (user ? PTE.US : 0n);
        if (!this.port.writeU64(slot, e)) return { kind: 'memory', pa: slot };
      } else if ((e & PTE.PS) !== 0n) {
        return { kind: 'conflict', va, level: l, cause: 'large-page', detail: `a large page at level ${l} covers this address` };
      } else if (user && (e & PTE.US) === 0n) {
        if (!this.port.writeU64(slot, e | PTE.US)) return { kind: 'memory', pa: slot };
      }
      table = e & PTE_ADDR_MASK;
    }
    return table + ((va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn) * 8n;
  }
}

/** A bump allocator over [start, end), for boot-time tables. */
export class BumpFrameAllocator implements FrameAllocator {
  #next: bigint;
  constructor(
    start: bigint,
    private readonly end: bigint,
  ) {
    this.#next = start;
  }
  allocTableFrame(): bigint | undefined {
    if (this.#next + 0x1000n > this.end) return undefined;
    const f = this.#next;
    this.#next += 0x1000n;
    return f;
  }
  /** The first frame not yet handed out. */
  get next(): bigint {
    return this.#next;
  }
}

/** A message naming a mapping error. */
export function mapErrorMessage(e: MapError): string {
  switch (e.kind) {
    case 'out-of-frames':
      return 'out of page-table frames';
    case 'memory':
      return `page-table memory at 0x${e.pa.toString(16)} could not be accessed`;
    case 'conflict':
      return `cannot map 0x${e.va.toString(16)}: ${e.detail}`;
  }
}
