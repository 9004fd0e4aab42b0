/**
 * A small synthetic machine for core tests: a VM with 64 MiB of RAM and x86-64 4-level page
 * tables written into guest memory by the host (standing in for the guest's own boot code).
 * Named "synthetic" because it is not the real kernel layout; integration tests use that.
 */
import { gpa } from '../../shared/addr.ts';
import { Vmm, type VmmConfig } from '../../hypervisor/index.ts';
import { CR0, CR4, EFER } from '../../shared/x86/cpu.ts';
import { HC, MEM_ATTR } from '../../shared/abi.ts';
import { encodePageList, type PageRange } from '../../shared/page-list.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import { BumpFrameAllocator, PTE, PageTableWriter, mapErrorMessage, type MapLevel } from '../../guest/mm/page-table-writer.ts';

export { PTE } from '../../guest/mm/page-table-writer.ts';

/** Page tables written by the host into guest memory, with the guest's own writer. */
export class PageTables {
  readonly root: bigint;
  readonly #alloc: BumpFrameAllocator;
  readonly #writer: PageTableWriter;
  constructor(vmm: Vmm, tablePool: bigint) {
    this.root = tablePool;
    const mem = vmm.core.memory;
    this.#alloc = new BumpFrameAllocator(tablePool + 0x1000n, tablePool + 0x10_0000n);
    this.#writer = new PageTableWriter(
      tablePool,
      { readU64: (pa) => mem.readU64(gpa(pa)), writeU64: (pa, v) => (mem.writeU64(gpa(pa), v), true) },
      this.#alloc,
    );
  }

  /** Maps `va` to `pa` with `flags` at `level`; throws on a mapping error (a test bug). */
  map(va: bigint, pa: bigint, flags: bigint, level: MapLevel = 1): void {
    const e = this.#writer.map(va, pa, flags, level);
    if (e) throw new Error(mapErrorMessage(e));
  }

  /** The guest-physical address of the leaf entry for `va` (4 KiB mappings only). */
  leafEntryGpa(va: bigint): bigint {
    const a = this.#writer.entryAddress(va, 1);
    if (typeof a !== 'bigint') throw new Error(mapErrorMessage(a));
    return a;
  }

  /** Guest-physical frames that hold the tables. */
  tableRange(): { start: bigint; end: bigint } {
    return { start: this.root, end: this.#alloc.next };
  }
}

/** Addresses of the synthetic layout. */
export const LAYOUT = {
  tables: 0x10_0000n,
  text: 0x20_0000n,
  rodata: 0x30_0000n,
  roAfterInit: 0x31_0000n,
  data: 0x40_0000n,
  pageList: 0x50_0000n,
  user: 0x60_0000n,
  kernelVa: 0xffff_ffff_8100_0000n,
  userVa: 0x40_0000n,
} as const;

/** A running synthetic machine. */
export interface SyntheticMachine {
  vmm: Vmm;
  cpu: GuestCpu;
  pt: PageTables;
  /** Kernel virtual address of the page at physical `pa` (kernel image mapped at kernelVa - text). */
  kva(pa: bigint): bigint;
}

/**
 * Boots a synthetic machine in long mode with paging, CR0.WP, SMEP, SMAP, NXE; maps
 * text (RX), rodata (R), ro_after_init (R), data (RW, NX) in the kernel half and one user
 * page (RW, user).
 */
export function bootSynthetic(config: Partial<VmmConfig> = {}): SyntheticMachine {
  const vmm = new Vmm({ memoryBytes: 64n << 20n, ...config });
  const pt = new PageTables(vmm, LAYOUT.tables);
  const kva = (pa: bigint) => LAYOUT.kernelVa + (pa - LAYOUT.text);
  pt.map(kva(LAYOUT.text), LAYOUT.text, PTE.G);
  pt.map(kva(LAYOUT.rodata), LAYOUT.rodata, PTE.G | PTE.NX);
  pt.map(kva(LAYOUT.roAfterInit), LAYOUT.roAfterInit, PTE.G | PTE.NX);
  pt.map(kva(LAYOUT.data), LAYOUT.data, PTE.RW | PTE.G | PTE.NX);
  pt.map(LAYOUT.userVa, LAYOUT.user, PTE.RW | PTE.US);
  vmm.core.memory.write(gpa(LAYOUT.text), Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3));
  vmm.core.memory.write(gpa(LAYOUT.rodata), new TextEncoder().encode('const string'));
  vmm.core.memory.write(gpa(LAYOUT.roAfterInit), Uint8Array.of(0xaa));
  vmm.core.memory.write(gpa(LAYOUT.data), Uint8Array.of(0x90, 0xc3));
  const vcpu = vmm.core.vcpus[0]!;
  const r = vcpu.setStateByVmm({
    cr0: CR0.PE | CR0.PG | CR0.WP | CR0.ET | CR0.NE,
    cr3: LAYOUT.tables,
    cr4: CR4.PAE | CR4.PGE | CR4.SMEP | CR4.SMAP | CR4.UMIP,
    efer: EFER.LME | EFER.NXE | EFER.SCE,
  });
  if (!r.ok) throw new Error('setStateByVmm failed');
  return { vmm, cpu: vmm.bootCpu, pt, kva };
}

/** Writes a one-page list with `ranges` at LAYOUT.pageList and calls PROTECT_MEMORY. */
export function protect(m: SyntheticMachine, ranges: PageRange[], listGpa: bigint = LAYOUT.pageList): Promise<number> {
  m.vmm.core.memory.write(gpa(listGpa), encodePageList(ranges, 0n));
  return m.cpu.vmcall(HC.PROTECT_MEMORY, listGpa);
}

/** Locks the synthetic kernel as heki_late_init would: text RX, rodata and ro_after_init R, all immutable. */
export function lockSyntheticKernel(m: SyntheticMachine): Promise<number> {
  const I = MEM_ATTR.IMMUTABLE;
  return protect(m, [
    { pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.EXEC | I },
    { pa: LAYOUT.rodata, epa: LAYOUT.rodata + 0x1000n, permissions: MEM_ATTR.READ | I },
    { pa: LAYOUT.roAfterInit, epa: LAYOUT.roAfterInit + 0x1000n, permissions: MEM_ATTR.READ | I },
    { pa: LAYOUT.data, epa: LAYOUT.data + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE },
  ]);
}
