/**
 * The vCPU's TLB: cached translations from virtual page to guest-physical frame, with the
 * combined permission bits of the walk. Like hardware, it caches the translation and the
 * page-table permissions, not the result of the checks that depend on the current mode,
 * CR0.WP, SMEP or SMAP, which are applied on every use. A mov to CR3 flushes the non-global
 * entries, invlpg drops one, a #PF or an EPT violation drops the faulting address's entry
 * (SDM 4.10.4.1; 29.4.3.1 for EPT), and changes of paging-control bits flush everything
 * (SDM 4.10.4). An entry is made only after a successful access, when the walk has set the
 * accessed flag of every entry it used (SDM 4.10.2.1), and it caches the leaf's dirty flag: a
 * write through an entry whose dirty flag is 0 walks again to set it (SDM 4.8).
 *
 * Entries are per 4 KiB page, also for 2 MiB and 1 GiB pages: invlpg and a fault drop the
 * 4 KiB piece of the address, not the whole large page (docs/mmu.md).
 */
import type { Gfn } from '../../shared/addr.ts';

/** One cached translation. */
export interface TlbEntry {
  /** Guest-physical frame the page maps to. */
  readonly frame: Gfn;
  /** Writable at every level of the walk. */
  readonly writable: boolean;
  /** User-accessible at every level of the walk. */
  readonly user: boolean;
  /** Execute-disable at some level of the walk. */
  readonly nx: boolean;
  /** Global (survives a CR3 write when CR4.PGE is set). */
  readonly global: boolean;
  /** The leaf's dirty flag was 1 when this entry was made (else a write walks again). */
  readonly dirty: boolean;
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
