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

  /**
   * `pages` pages (plus a guard page), page-aligned, at the lowest free address that fits
   * (alloc_vmap_area()'s lowest match); undefined when the area is full.
   */
  alloc(pages: number): bigint | undefined {
    const size = BigInt(pages + 1) * 4096n;
    const r = this.#free.find((x) => x.start + size <= x.end);
    if (!r) return undefined;
    const va = r.start;
    this.#claim(va, size);
    return va;
  }

  /**
   * Claims `pages` pages at `va` (plus the guard page after them, as vmalloc leaves one):
   * false when `va` is not page-aligned or any of those pages is not free.
   */
  allocAt(va: bigint, pages: number): boolean {
    if ((va & 4095n) !== 0n) return false;
    const size = BigInt(pages + 1) * 4096n;
    if (!this.#free.some((r) => r.start <= va && va + size <= r.end)) return false;
    this.#claim(va, size);
    return true;
  }

  /** Removes [va, va + size) from the free range holding it. */
  #claim(va: bigint, size: bigint): void {
    const i = this.#free.findIndex((r) => r.start <= va && va + size <= r.end);
    const r = this.#free[i]!;
    const parts = [
      { start: r.start, end: va },
      { start: va + size, end: r.end },
    ].filter((p) => p.end > p.start);
    this.#free.splice(i, 1, ...parts);
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
    for (let i = 0; i + 1 < this.#free.length;) {
      const a = this.#free[i]!;
      const b = this.#free[i + 1]!;
      if (a.end === b.start) {
        a.end = b.end;
        this.#free.splice(i + 1, 1);
      } else i++;
    }
  }
}
