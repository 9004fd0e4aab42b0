/**
 * A range of kernel virtual addresses handed out in page units (the module area, vmalloc
 * space). First fit over a sorted free list, with a guard page after each allocation as
 * vmalloc leaves one.
 */

/** Allocator for [start, end). */
export class VirtualArea {
  readonly #free: Array<{ start: bigint; end: bigint }>;

  constructor(
    readonly start: bigint,
    readonly end: bigint,
  ) {
    this.#free = [{ start, end }];
  }

  /** `pages` pages (plus a guard page), page-aligned; undefined when the area is full. */
  alloc(pages: number): bigint | undefined {
    const size = BigInt(pages + 1) * 4096n;
    for (const r of this.#free) {
      if (r.end - r.start >= size) {
        const va = r.start;
        r.start += size;
        return va;
      }
    }
    return undefined;
  }

  /** The free ranges as plain data. */
  exportState(): Array<{ start: bigint; end: bigint }> {
    return this.#free.map((r) => ({ ...r }));
  }

  /** Replaces the free ranges (a restored kernel's). */
  importState(free: ReadonlyArray<{ start: bigint; end: bigint }>): void {
    this.#free.splice(0, this.#free.length, ...free.map((r) => ({ start: r.start, end: r.end })));
  }

  /** Returns `pages` pages at `va` (and the guard page) to the area. */
  free(va: bigint, pages: number): void {
    const end = va + BigInt(pages + 1) * 4096n;
    this.#free.push({ start: va, end });
    this.#free.sort((a, b) => (a.start < b.start ? -1 : 1));
    for (let i = 0; i + 1 < this.#free.length; ) {
      const a = this.#free[i]!;
      const b = this.#free[i + 1]!;
      if (a.end === b.start) {
        a.end = b.end;
        this.#free.splice(i + 1, 1);
      } else i++;
    }
  }
}
