/**
 * Lookups over one signed manifest for the patch plugins, built once per manifest and
 * fetched once per batch: no bigint and no hash lookup per record on the volume path.
 */
import { hex } from '../../shared/addr.ts';
import type { KernelManifest } from '../manifest.ts';
import type { PatchView } from './patch-view.ts';

/** A manifest's ftrace trampoline with its address split for number compares. */
export interface TrampolineEntry {
  readonly lo: number;
  readonly hi: number;
  readonly name: string;
  readonly addr: bigint;
  /** `hex(addr)`, computed once. */
  readonly hex: string;
  /** The end of an allowed reason for a kernel site calling it: ` (kernel) -> call <name> (<hex>)`. */
  readonly kernelCallSuffix: string;
}

/** A `.init.text` range, with its bounds split for number compares. */
interface InitRange {
  readonly start: bigint;
  readonly end: bigint;
  readonly startLo: number;
  readonly startHi: number;
  readonly endLo: number;
  readonly endHi: number;
}

/**
 * Lookups over one manifest for the record path, built once per manifest and fetched once per
 * batch: the kernel's `__mcount_loc` sites split by their high 32 bits into sorted arrays of
 * low halves (a record's site is looked up without making a bigint), the `.init.text` ranges
 * and the ftrace trampolines.
 */
export class SiteIndex {
  readonly #mcount = new Map<number, Uint32Array>();
  /** The high half and array of the last lookup, and the position of its last hit: batches come in ascending order. */
  #lastHi = -1;
  #lastArr: Uint32Array | undefined;
  #hint = 0;
  readonly initRanges: readonly InitRange[];
  readonly trampolines: readonly TrampolineEntry[];

  private constructor(m: KernelManifest) {
    const lists = new Map<number, number[]>();
    for (const s of m.mcountSites) {
      const hi = Number(s >> 32n);
      let l = lists.get(hi);
      if (!l) lists.set(hi, (l = []));
      l.push(Number(s & 0xffff_ffffn));
    }
    for (const [hi, l] of lists) this.#mcount.set(hi, Uint32Array.from(l).sort());
    const split = (a: bigint) => [Number(a & 0xffff_ffffn), Number(a >> 32n)] as const;
    this.initRanges = m.textRanges
      .filter((t) => t.name === '.init.text')
      .map((t) => {
        const [startLo, startHi] = split(t.start);
        const [endLo, endHi] = split(t.end);
        return { start: t.start, end: t.end, startLo, startHi, endLo, endHi };
      });
    this.trampolines = [...m.ftraceTrampolines].map(([addr, name]) => ({
      lo: Number(addr & 0xffff_ffffn),
      hi: Number(addr >> 32n),
      name,
      addr,
      hex: hex(addr),
      kernelCallSuffix: ` (kernel) -> call ${name} (${hex(addr)})`,
    }));
  }

  static readonly #cache = new WeakMap<KernelManifest, SiteIndex>();

  /** The index of `m` (built on first use). */
  static of(m: KernelManifest): SiteIndex {
    let idx = SiteIndex.#cache.get(m);
    if (!idx) SiteIndex.#cache.set(m, (idx = new SiteIndex(m)));
    return idx;
  }

  /** True when `hi:lo` is one of the kernel's own `__mcount_loc` sites (`m.mcountSites.has(site)`). */
  kernelMcountSite(lo: number, hi: number): boolean {
    let a = this.#lastArr;
    if (hi !== this.#lastHi) {
      a = this.#mcount.get(hi);
      this.#lastHi = hi;
      this.#lastArr = a;
      this.#hint = 0;
    }
    if (a === undefined) return false;
    const h = this.#hint;
    if (h < a.length && a[h] === lo) return true;
    if (h + 1 < a.length && a[h + 1] === lo) {
      this.#hint = h + 1;
      return true;
    }
    let l = 0;
    let r = a.length;
    while (l < r) {
      const mid = (l + r) >>> 1;
      if ((a[mid] as number) < lo) l = mid + 1;
      else r = mid;
    }
    if (l < a.length && a[l] === lo) {
      this.#hint = l;
      return true;
    }
    return false;
  }

  /** True when the site of `v` lies in a `.init.text` range (what patch-sites.ts `initTextAt` finds). */
  inInitText(v: PatchView): boolean {
    const lo = v.siteLo;
    const hi = v.siteHi;
    const rs = this.initRanges;
    for (let k = 0; k < rs.length; k++) {
      const r = rs[k]!;
      const geStart = hi > r.startHi || (hi === r.startHi && lo >= r.startLo);
      const ltEnd = hi < r.endHi || (hi === r.endHi && lo < r.endLo);
      if (geStart && ltEnd) return true;
    }
    return false;
  }

  /** The trampoline at `lo:hi`, or undefined. */
  trampolineAt(lo: number, hi: number): TrampolineEntry | undefined {
    const list = this.trampolines;
    for (let k = 0; k < list.length; k++) {
      const e = list[k]!;
      if (e.lo === lo && e.hi === hi) return e;
    }
    return undefined;
  }
}
