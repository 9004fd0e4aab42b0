/**
 * The vCPU's TLB: cached translations from virtual page to guest-physical frame, with the
 * combined permission bits of the walk. Like hardware, it caches the translation and the
 * page-table permissions, not the result of the checks that depend on the current mode,
 * CR0.WP, SMEP or SMAP, which are applied on every use. A mov to CR3 flushes the non-global
 * entries, invlpg drops one, and changes of paging-control bits flush everything (SDM 4.10.4).
 */

/** One cached translation. */
export interface TlbEntry {
  /** Guest-physical frame the page maps to. */
  readonly frame: number;
  /** Writable at every level of the walk. */
  readonly writable: boolean;
  /** User-accessible at every level of the walk. */
  readonly user: boolean;
  /** Execute-disable at some level of the walk. */
  readonly nx: boolean;
  /** Global (survives a CR3 write when CR4.PGE is set). */
  readonly global: boolean;
}

/** A small fully associative TLB keyed by virtual page number. */
export class Tlb {
  readonly #entries = new Map<bigint, TlbEntry>();
  readonly #capacity: number;
  /** Hits and misses, for the benchmark and tests. */
  hits = 0;
  misses = 0;

  constructor(capacity = 4096) {
    this.#capacity = capacity;
  }

  lookup(vpn: bigint): TlbEntry | undefined {
    const e = this.#entries.get(vpn);
    if (e) this.hits++;
    else this.misses++;
    return e;
  }

  insert(vpn: bigint, entry: TlbEntry): void {
    if (this.#entries.size >= this.#capacity) {
      // Evict the oldest insertion (Map keeps insertion order).
      const first = this.#entries.keys().next();
      if (!first.done) this.#entries.delete(first.value);
    }
    this.#entries.set(vpn, entry);
  }

  /** invlpg. */
  invalidate(vpn: bigint): void {
    this.#entries.delete(vpn);
  }

  /** mov to CR3: drops non-global entries (all of them when `keepGlobal` is false). */
  flush(keepGlobal: boolean): void {
    if (!keepGlobal) {
      this.#entries.clear();
      return;
    }
    for (const [vpn, e] of this.#entries) if (!e.global) this.#entries.delete(vpn);
  }

  get size(): number {
    return this.#entries.size;
  }
}
