/**
 * The guest kernel's Heki layer: heki_early_init, heki_late_init, protect, and the
 * map/update/unmap hooks the memory manager calls, over a {@link HekiHypervisor} backend.
 * After boot every change of a page's union permission is sent to the hypervisor: narrowing
 * as PROTECT_MEMORY (always allowed), widening as an authenticated SET_MEMORY.
 */
import { MEM_ATTR } from '../../shared/abi.ts';
import type { PageRange } from '../../shared/page-list.ts';
import type { HekiHypervisor, HekiStatus } from './hypervisor.ts';
import { PermissionCounters, type CountsBaseline, type Prot } from './counters.ts';

/** What heki_late_init locks. */
export interface LateInitPlan {
  /** CR0 bits to pin (CR0.WP). */
  readonly cr0: bigint;
  /** CR4 bits to pin (SMEP, SMAP, UMIP, ...). */
  readonly cr4: bigint;
  /** Every range of guest RAM with its final attributes. */
  readonly ranges: readonly PageRange[];
}

/** The Heki state of one guest kernel. */
export class Heki {
  readonly hv: HekiHypervisor;
  readonly counters: PermissionCounters;
  #abi: number | undefined;
  #bootEnded = false;

  constructor(hv: HekiHypervisor, baseline?: CountsBaseline) {
    this.hv = hv;
    this.counters = new PermissionCounters(baseline);
  }

  /** The hypervisor's ABI version once detected; undefined means Heki is off. */
  get abiVersion(): number | undefined {
    return this.#abi;
  }

  get bootEnded(): boolean {
    return this.#bootEnded;
  }

  /** The layer's state as plain data (hibernation, migration). */
  exportState(): { abi: number | undefined; bootEnded: boolean; counters: Array<[number, { read: number; write: number; exec: number }]> } {
    return { abi: this.#abi, bootEnded: this.#bootEnded, counters: this.counters.exportState() };
  }

  /** Takes a restored kernel's state back. */
  importState(s: {
    abi: number | undefined;
    bootEnded: boolean;
    counters: ReadonlyArray<readonly [number, { read: number; write: number; exec: number }]>;
  }): void {
    this.#abi = s.abi;
    this.#bootEnded = s.bootEnded;
    this.counters.importState(s.counters);
  }

  /** heki_early_init: find out whether the hypervisor speaks Heki. */
  async earlyInit(): Promise<boolean> {
    this.#abi = await this.hv.detect();
    return this.#abi !== undefined;
  }

  /**
   * heki_late_init: pin the control registers, lock every range, and end boot (the hypervisor
   * verifies the kernel text). Stops at the first refusal and says which step it was.
   */
  async lateInit(plan: LateInitPlan): Promise<{ ok: true } | { ok: false; step: string; status: HekiStatus }> {
    if (this.#abi === undefined) return { ok: false, step: 'detect', status: { ok: false, status: 0, name: 'no Heki hypervisor' } };
    const steps: Array<[string, () => Promise<HekiStatus>]> = [
      ['lock CR0', () => this.hv.lockCr(0, plan.cr0)],
      ['lock CR4', () => this.hv.lockCr(4, plan.cr4)],
      ['protect memory', () => this.hv.protectMemory(plan.ranges)],
    ];
    if (this.hv.endBoot) steps.push(['end boot', () => this.hv.endBoot!()]);
    for (const [step, run] of steps) {
      const s = await run();
      if (!s.ok) return { ok: false, step, status: s };
    }
    this.#bootEnded = true;
    return { ok: true };
  }

  /** Sets ranges' permissions directly (before boot ends, or to narrow after). */
  protect(ranges: readonly PageRange[]): Promise<HekiStatus> {
    return this.hv.protectMemory(ranges);
  }

  /**
   * Records mappings created, changed or removed at virtual address `va` (one entry per page)
   * and, after boot, tells the hypervisor about every frame whose union permission changed.
   */
  async remap(va: bigint, changes: ReadonlyArray<{ frame: number; from?: Prot; to?: Prot }>, options: { sync?: boolean } = {}): Promise<HekiStatus> {
    // A frame no mapping counts is plain data after boot: heki_late_init locked all RAM RW.
    const before = changes.map((c) => this.counters.union(c.frame) || MEM_ATTR.READ | MEM_ATTR.WRITE);
    for (const c of changes) {
      if (c.from && c.to) this.counters.update(c.frame, c.from, c.to);
      else if (c.to) this.counters.map(c.frame, c.to);
      else if (c.from) this.counters.unmap(c.frame, c.from);
    }
    if (!this.#bootEnded || options.sync === false) return { ok: true };
    for (let i = 0; i < changes.length; i++) {
      const frame = changes[i]!.frame;
      const was = before[i]!;
      // A frame nothing maps any more keeps read/write as data (the allocator may reuse it).
      const now = this.counters.union(frame) || MEM_ATTR.READ | MEM_ATTR.WRITE;
      if (now === was) continue;
      const widened = (now & ~was) !== 0;
      const pageVa = va + BigInt(i) * 4096n;
      const s = widened
        ? this.hv.setMemory
          ? await this.hv.setMemory(pageVa, 1, now)
          : ({ ok: false, status: -95, name: 'no authenticated set_memory in this hypervisor' } as HekiStatus)
        : await this.hv.protectMemory([{ pa: BigInt(frame) << 12n, epa: (BigInt(frame) + 1n) << 12n, permissions: now }]);
      if (!s.ok) return s;
    }
    return { ok: true };
  }
}
