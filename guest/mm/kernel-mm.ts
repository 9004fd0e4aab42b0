/**
 * The guest kernel's memory manager after boot: vmalloc/vfree, vmap/vunmap of existing
 * frames (aliases), and set_memory_ro/rw/x/nx/rox. Every mapping change updates the guest
 * page tables and the Heki counters; after boot Heki tells the hypervisor about each frame
 * whose union permission changed, and a refusal undoes the page-table change, so the guest's
 * own view never claims more than the hypervisor granted.
 */
import { gva } from '../../shared/addr.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { HekiStatus } from '../heki/hypervisor.ts';
import type { Heki } from '../heki/heki.ts';
import { refusalOf, type MmFailure } from '../heki/refusal.ts';
import type { Prot } from '../heki/counters.ts';
import type { FrameAllocator } from '../kernel/frame-allocator.ts';
import { MODULES_END, MODULES_VADDR, VMALLOC_START } from '../kernel/layout.ts';
import { PTE, PTE_AD, PTE_ADDR_MASK, type PageTableWriter, mapErrorMessage } from './page-table-writer.ts';
import { VirtualArea } from './virtual-area.ts';

/** Protections the kernel uses for its mappings. */
export const PROT = {
  RW: { read: true, write: true, exec: false },
  RO: { read: true, write: false, exec: false },
  RX: { read: true, write: false, exec: true },
  RWX: { read: true, write: true, exec: true },
} as const satisfies Record<string, Prot>;

/** set_memory_* operations. */
export type SetMemoryOp = 'ro' | 'rw' | 'x' | 'nx' | 'rox';

/**
 * A mapping operation's result; a failure carries the hypervisor's refusal when that was
 * the cause (guest/heki/refusal.ts), so callers tell a protection from a guest failure.
 */
export type MmResult<T> = { ok: true; value: T } | MmFailure;

function pteFlags(p: Prot): bigint {
  return PTE.G | PTE_AD | (p.write ? PTE.RW : 0n) | (p.exec ? 0n : PTE.NX);
}

function protOf(pte: bigint): Prot {
  return { read: true, write: (pte & PTE.RW) !== 0n, exec: (pte & PTE.NX) === 0n };
}

function failed(what: string, s: Extract<HekiStatus, { ok: false }>): MmFailure {
  return { ok: false, reason: `${what}: the hypervisor refused (${s.name})`, refused: refusalOf(s) };
}

/** The memory manager. */
export class KernelMm {
  readonly modules = new VirtualArea(MODULES_VADDR, MODULES_END);
  readonly vmallocArea = new VirtualArea(VMALLOC_START, VMALLOC_START + (1n << 45n));

  constructor(
    readonly cpu: GuestCpu,
    readonly pageTables: PageTableWriter,
    readonly frames: FrameAllocator,
    readonly heki: Heki,
  ) {}

  /** The frame a kernel virtual address maps to, from the guest's own tables. */
  frameOf(va: bigint): number | undefined {
    const e = this.pageTables.lookup(va & ~0xfffn, 1);
    return e !== undefined && (e & PTE.P) !== 0n ? Number((e & PTE_ADDR_MASK) >> 12n) : undefined;
  }

  /**
   * vmalloc: `pages` fresh frames mapped at consecutive addresses of `area` with `prot`.
   * `sync: false` records the mappings in the counters without asking the hypervisor (the
   * caller is about to obtain the permissions through an authenticated request).
   *
   * `place.at` asks for exactly that address (a module at the address the real kernel's
   * module_alloc gave it); otherwise the lowest free range that fits, as alloc_vmap_area().
   */
  async vmalloc(
    pages: number,
    prot: Prot,
    area: 'modules' | 'vmalloc' = 'vmalloc',
    place: { readonly at?: bigint } = {},
  ): Promise<MmResult<{ va: bigint; frames: number[] }>> {
    const space = area === 'modules' ? this.modules : this.vmallocArea;
    let va: bigint | undefined;
    if (place.at !== undefined) {
      if (!space.allocAt(place.at, pages))
        return { ok: false, reason: `${area} area: ${pages} page(s) at 0x${place.at.toString(16)} (and the guard page after them) are not free` };
      va = place.at;
    } else va = space.alloc(pages);
    if (va === undefined) return { ok: false, reason: `${area} area exhausted` };
    const frames: number[] = [];
    for (let i = 0; i < pages; i++) {
      const pa = this.frames.alloc();
      if (pa === undefined) {
        for (const f of frames) this.frames.release(BigInt(f) << 12n);
        return { ok: false, reason: 'out of memory' };
      }
      frames.push(Number(pa >> 12n));
    }
    const m = await this.vmap(frames, prot, va);
    if (!m.ok) {
      for (const f of frames) this.frames.release(BigInt(f) << 12n);
      return m;
    }
    // Fresh pages hold whatever the last user left: clear them as vmalloc(__GFP_ZERO) would.
    const zero = new Uint8Array(4096);
    for (let i = 0; i < pages; i++) if (!this.cpu.write(gva(va + BigInt(i) * 4096n), zero).ok) return { ok: false, reason: 'cannot clear a fresh page' };
    return { ok: true, value: { va, frames } };
  }

  /** vmap: maps existing `frames` at `at` (or a fresh vmalloc address) with `prot`. */
  async vmap(frames: readonly number[], prot: Prot, at?: bigint): Promise<MmResult<bigint>> {
    const va = at ?? this.vmallocArea.alloc(frames.length);
    if (va === undefined) return { ok: false, reason: 'vmalloc area exhausted' };
    // Map first: after boot a widening is checked against what the new mapping points at.
    for (let i = 0; i < frames.length; i++) {
      const e = this.pageTables.map(va + BigInt(i) * 4096n, BigInt(frames[i]!) << 12n, pteFlags(prot));
      if (e) return { ok: false, reason: mapErrorMessage(e) };
    }
    const s = await this.heki.remap(
      va,
      frames.map((frame) => ({ frame, to: prot })),
    );
    if (!s.ok) {
      await this.heki.remap(
        va,
        frames.map((frame) => ({ frame, from: prot })),
        { sync: false },
      );
      for (let i = 0; i < frames.length; i++) {
        this.pageTables.unmap(va + BigInt(i) * 4096n);
        this.cpu.invlpg(gva(va + BigInt(i) * 4096n));
      }
      return failed('vmap', s);
    }
    return { ok: true, value: va };
  }

  /** vunmap: removes `pages` mappings at `va`; returns the frames they mapped. */
  async vunmap(va: bigint, pages: number): Promise<MmResult<number[]>> {
    const changes: Array<{ frame: number; from: Prot }> = [];
    for (let i = 0; i < pages; i++) {
      const v = va + BigInt(i) * 4096n;
      const e = this.pageTables.lookup(v, 1);
      if (e === undefined || (e & PTE.P) === 0n) return { ok: false, reason: `0x${v.toString(16)} is not mapped` };
      changes.push({ frame: Number((e & PTE_ADDR_MASK) >> 12n), from: protOf(e) });
    }
    for (let i = 0; i < pages; i++) {
      const v = va + BigInt(i) * 4096n;
      this.pageTables.unmap(v);
      this.cpu.invlpg(gva(v));
    }
    const s = await this.heki.remap(va, changes);
    if (!s.ok) return failed('vunmap', s);
    return { ok: true, value: changes.map((c) => c.frame) };
  }

  /** vfree: vunmap and give the frames back. */
  async vfree(va: bigint, pages: number, area: 'modules' | 'vmalloc' = 'vmalloc'): Promise<MmResult<void>> {
    const r = await this.vunmap(va, pages);
    if (!r.ok) return r;
    for (const f of r.value) this.frames.release(BigInt(f) << 12n);
    (area === 'modules' ? this.modules : this.vmallocArea).free(va, pages);
    return { ok: true, value: undefined };
  }

  /**
   * set_memory_<op>(va, pages): changes the protection of mapped pages. After boot the
   * hypervisor must agree; when it refuses, nothing changes in the guest's tables either.
   */
  async setMemory(va: bigint, pages: number, op: SetMemoryOp): Promise<MmResult<void>> {
    const changes: Array<{ frame: number; from: Prot; to: Prot }> = [];
    const entries: bigint[] = [];
    for (let i = 0; i < pages; i++) {
      const v = va + BigInt(i) * 4096n;
      // CPA: a protection change inside a large mapping splits it first.
      const split = this.pageTables.splitToPage(v);
      if (split) return { ok: false, reason: mapErrorMessage(split) };
      const e = this.pageTables.lookup(v, 1);
      if (e === undefined || (e & PTE.P) === 0n) return { ok: false, reason: `0x${v.toString(16)} is not mapped with a 4 KiB page` };
      const from = protOf(e);
      const to: Prot =
        op === 'ro'
          ? { ...from, write: false }
          : op === 'rw'
            ? { ...from, write: true }
            : op === 'x'
              ? { ...from, exec: true }
              : op === 'nx'
                ? { ...from, exec: false }
                : { read: true, write: false, exec: true };
      changes.push({ frame: Number((e & PTE_ADDR_MASK) >> 12n), from, to });
      entries.push(e);
    }
    const s = await this.heki.remap(va, changes);
    if (!s.ok) {
      await this.heki.remap(
        va,
        changes.map((c) => ({ frame: c.frame, from: c.to, to: c.from })),
        { sync: false },
      );
      return failed(`set_memory_${op}`, s);
    }
    for (let i = 0; i < pages; i++) {
      const v = va + BigInt(i) * 4096n;
      const e = this.pageTables.protect(v, (entries[i]! & ~(PTE.RW | PTE.NX | PTE_ADDR_MASK | PTE.P)) | pteFlags(changes[i]!.to));
      if (e) return { ok: false, reason: mapErrorMessage(e) };
      this.cpu.invlpg(gva(v));
    }
    return { ok: true, value: undefined };
  }

  /**
   * Changes the guest-side protection of pages whose hypervisor permissions an authenticated
   * request (module load, code load) already set: page tables and counters only.
   */
  async adopt(va: bigint, pages: number, to: Prot): Promise<MmResult<void>> {
    const changes: Array<{ frame: number; from: Prot; to: Prot }> = [];
    for (let i = 0; i < pages; i++) {
      const v = va + BigInt(i) * 4096n;
      const e = this.pageTables.lookup(v, 1);
      if (e === undefined || (e & PTE.P) === 0n) return { ok: false, reason: `0x${v.toString(16)} is not mapped` };
      changes.push({ frame: Number((e & PTE_ADDR_MASK) >> 12n), from: protOf(e), to });
      const err = this.pageTables.protect(v, pteFlags(to));
      if (err) return { ok: false, reason: mapErrorMessage(err) };
      this.cpu.invlpg(gva(v));
    }
    await this.heki.remap(va, changes, { sync: false });
    return { ok: true, value: undefined };
  }
}
