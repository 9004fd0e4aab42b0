/**
 * Boot of the simulated guest kernel on the real Linux 6.1 image, after arch/x86's path from
 * startup_64 to kernel_init. The VMM has already put the vmlinux PT_LOAD segments at their
 * physical addresses (as Firecracker's loader does); everything here runs on the guest's
 * vCPU and touches memory only through it:
 *
 * 1. early page tables (paging still off): the kernel image at __START_KERNEL_map with 2 MiB
 *    pages, writable and executable as in early boot, and the direct map of all RAM (RW, NX);
 * 2. long mode and paging; CR4.SMEP|SMAP|UMIP; the syscall MSRs, IDT and GDT;
 * 3. the kernel's text touch-ups for the CPU it runs on, in 6.1's order (static_call_init,
 *    ftrace_init, PREEMPT_DYNAMIC's static calls, alternative_instructions: paravirt,
 *    retpolines, return thunks, alternatives, SMP lock prefixes; shared/x86/touchups/),
 *    computed on a copy of the file's text and written through the vCPU (text_poke_early);
 * 4. free_initmem and mark_rodata_ro: 4 KiB mappings with the STRICT_KERNEL_RWX permissions
 *    (text RX, rodata R, data/bss RW NX, freed init memory RW NX);
 * 5. heki_late_init: pin CR0.WP and CR4 bits, lock text RX and rodata (with ro_after_init) R
 *    as immutable and all other RAM RW NX, then end boot: the verifier compares the kernel text
 *    with the signed manifest.
 */
import { gva } from '../../shared/addr.ts';
import { CR0, CR4, EFER, MSR } from '../../shared/x86/cpu.ts';
import { MEM_ATTR } from '../../shared/abi.ts';
import type { GuestCpu, GuestOutcome } from '../../shared/guest-cpu.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import type { PageRange } from '../../shared/page-list.ts';
import { BumpFrameAllocator, PTE, PTE_AD, PageTableWriter, mapErrorMessage } from '../mm/page-table-writer.ts';
import { BOOT_TABLES, START_KERNEL_MAP, physToVirt } from './layout.ts';
import { FrameAllocator } from './frame-allocator.ts';
import { cpuPhysPort } from './phys-port.ts';
import { Heki } from '../heki/heki.ts';
import { Scratch } from '../heki/scratch.ts';
import { selectHekiBackend } from '../heki/backend-select.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { detectCpu, type CpuView } from './cpu-detect.ts';
import { vmlinuxTextSpace, vmlinuxTouchupContext, vmlinuxTouchupTables } from '../../shared/kernel-image/touchup-tables.ts';
import { applyBootTouchups, type BootTouchupReport } from '../../shared/x86/touchups/boot-touchups.ts';
import { refusalOf, type HekiRefusal } from '../heki/refusal.ts';

const MB2 = 0x20_0000n;
const PAGE = 0x1000n;
/** Scratch buffer for hypervisor descriptors: 2 MiB holds a batch of all 40,521 ftrace sites. */
const SCRATCH_BYTES = 2 << 20;

/** How to boot. */
export interface BootOptions {
  /** Bytes of guest RAM. */
  readonly ramBytes: bigint;
  /** Progress messages (the demo prints them). */
  readonly log?: (line: string) => void;
  /**
   * Runs once the boot touch-ups are written (step 3), before mark_rodata_ro and
   * heki_late_init, with the text still writable through the vCPU. Only the security
   * catalogue sets it: an attacker who owns the kernel's boot code tampers with the touched-up
   * text here (guest/attacks/boot-touchups.ts). An exception it throws ends the boot with it.
   * Absent (every ordinary boot), boot does exactly what Linux does.
   */
  readonly afterTouchups?: (booting: TouchedUpText) => void | Promise<void>;
}

/** What {@link BootOptions.afterTouchups} is given: the vCPU, the image and what boot applied for which CPU. */
export interface TouchedUpText {
  readonly cpu: GuestCpu;
  readonly image: KernelImage;
  /** The CPU model as the vCPU's CPUID gave it. */
  readonly bootCpuData: CpuView;
  /** What the touch-ups did. */
  readonly touchups: BootTouchupReport;
}

/** What a booted kernel keeps: its page tables, allocator, Heki layer and image. */
export interface BootedKernel {
  readonly cpu: GuestCpu;
  readonly image: KernelImage;
  readonly pageTables: PageTableWriter;
  readonly frames: FrameAllocator;
  readonly heki: Heki;
  readonly scratch: Scratch;
  /** Where the page-table writer takes new table frames from (the boot tables' pool). */
  readonly tableFrames?: BumpFrameAllocator;
  /** Milliseconds per boot phase. */
  readonly timings: Readonly<Record<string, number>>;
  /** `boot_cpu_data` and the command line, as the vCPU's CPUID gave them (cpu-detect.ts). */
  readonly bootCpuData: CpuView;
  /** What the boot touch-ups did (absent for a kernel restored from a snapshot). */
  readonly touchups?: BootTouchupReport;
  /**
   * Whether alternative_instructions() patched the `.smp_locks` prefixes to UP (one CPU
   * present): the kernel's `uniproc_patched`, which a later CPU hotplug undoes
   * (guest/patching/smp-alternatives.ts). Absent: the prefixes were kept.
   */
  readonly uniprocPatched?: boolean;
}

/** Why boot stopped. */
export interface BootError {
  readonly phase: string;
  readonly message: string;
  /**
   * Set when the hypervisor refused a heki_late_init request: which one (`lock CR0`,
   * `protect memory`, `end boot`...) and the status it returned. Boot failures of the
   * guest's own (no memory, a bad image) have none.
   */
  readonly refused?: { readonly step: string; readonly refusal: HekiRefusal };
}

function must<T>(r: GuestOutcome<T>, phase: string, what: string): Result<T, BootError> {
  if (r.ok) return ok(r.value);
  const f = r.fault;
  return err({ phase, message: `${what}: ${f.kind === 'stopped' ? `VM stopped: ${f.detail}` : `#${f.vector} (${f.cause}) ${f.detail}`}` });
}

const roundUp = (v: bigint, a: bigint): bigint => (v + a - 1n) & ~(a - 1n);
const roundDown = (v: bigint, a: bigint): bigint => v & ~(a - 1n);

/** Physical extent of the kernel image and the memory boot keeps after it (.brk, .init.scratch). */
export function kernelImageExtent(image: KernelImage): { start: bigint; end: bigint } {
  const b = image.boundaries;
  const phys = (va: bigint): bigint => va - START_KERNEL_MAP;
  return { start: roundDown(phys(b._stext), MB2), end: roundUp(phys(b.__bss_stop), MB2) + 0x80_0000n };
}

/**
 * heki_init_perm's counters baseline: every RAM frame has its direct-map mapping (RW NX,
 * read-only for text and rodata); the image's frames also have the kernel mapping (text RX,
 * rodata R, the rest RW NX), as mark_rodata_ro leaves them.
 */
export function hekiCountsBaseline(image: KernelImage): (frame: number) => { read: number; write: number; exec: number } {
  const b = image.boundaries;
  const phys = (va: bigint): bigint => va - START_KERNEL_MAP;
  const ext = kernelImageExtent(image);
  const textF = { start: Number(phys(roundDown(b._stext, PAGE)) >> 12n), end: Number(phys(roundUp(b._etext, PAGE)) >> 12n) };
  const roF = { start: textF.end, end: Number(phys(roundUp(b.__end_rodata, PAGE)) >> 12n) };
  const imgF = { start: Number(ext.start >> 12n), end: Number(ext.end >> 12n) };
  return (f) => {
    if (f >= textF.start && f < textF.end) return { read: 2, write: 0, exec: 1 };
    if (f >= roF.start && f < roF.end) return { read: 2, write: 0, exec: 0 };
    if (f >= imgF.start && f < imgF.end) return { read: 2, write: 2, exec: 0 };
    return { read: 1, write: 1, exec: 0 };
  };
}

/** Boots the kernel on `cpu`. */
export async function bootKernel(cpu: GuestCpu, image: KernelImage, options: BootOptions): Promise<Result<BootedKernel, BootError>> {
  const log = options.log ?? (() => undefined);
  const timings: Record<string, number> = {};
  let t = performance.now();
  const phase = (name: string): void => {
    const now = performance.now();
    timings[name] = now - t;
    t = now;
  };
  const b = image.boundaries;
  const phys = (va: bigint): bigint => va - START_KERNEL_MAP;
  const { start: imageStart, end: imageEnd } = kernelImageExtent(image);
  if (options.ramBytes < imageEnd + 0x400_0000n)
    return err({ phase: 'setup', message: `${options.ramBytes} bytes of RAM cannot hold the kernel image and its working memory` });
  // 0. identify_boot_cpu(): the CPU model, from CPUID only.
  const bootCpuData = detectCpu(cpu);
  if (!bootCpuData.ok) return err({ phase: 'identify_boot_cpu', message: bootCpuData.error });

  // 1. Early page tables, written with paging off.
  const early = cpuPhysPort(cpu, false);
  const tableFrames = new BumpFrameAllocator(BOOT_TABLES.start + PAGE, BOOT_TABLES.end);
  for (let pa = BOOT_TABLES.start; pa < BOOT_TABLES.start + PAGE; pa += 8n)
    if (!early.writeU64(pa, 0n)) return err({ phase: 'page tables', message: 'cannot clear the root table' });
  const pt = new PageTableWriter(BOOT_TABLES.start, early, tableFrames);
  for (let pa = imageStart; pa < imageEnd; pa += MB2) {
    const e = pt.map(START_KERNEL_MAP + pa, pa, PTE.RW | PTE.G | PTE_AD, 2);
    if (e) return err({ phase: 'page tables', message: mapErrorMessage(e) });
  }
  for (let pa = 0n; pa < options.ramBytes; pa += MB2) {
    const e = pt.map(physToVirt(pa), pa, PTE.RW | PTE.G | PTE.NX | PTE_AD, 2);
    if (e) return err({ phase: 'page tables', message: mapErrorMessage(e) });
  }
  phase('early page tables');

  // 2. Long mode, paging, CPU features, entry points.
  for (const [what, r] of [
    ['EFER', cpu.wrmsr(MSR.EFER, EFER.LME | EFER.NXE | EFER.SCE)],
    ['CR4', cpu.writeCr(4, CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.OSXMMEXCPT)],
    ['CR3', cpu.writeCr(3, pt.root)],
    ['CR0', cpu.writeCr(0, CR0.PE | CR0.MP | CR0.ET | CR0.NE | CR0.WP | CR0.AM | CR0.PG)],
    ['CR4 protections', cpu.writeCr(4, CR4.PAE | CR4.PGE | CR4.OSFXSR | CR4.OSXMMEXCPT | CR4.SMEP | CR4.SMAP | CR4.UMIP)],
  ] as const) {
    const m = must(r, 'cpu setup', `setting ${what}`);
    if (!m.ok) return m;
  }
  const sym = (name: string): bigint | undefined => image.systemMap.address(name);
  const entry = sym('entry_SYSCALL_64');
  const idt = sym('idt_table');
  if (entry === undefined || idt === undefined) return err({ phase: 'cpu setup', message: 'System.map lacks entry_SYSCALL_64 or idt_table' });
  for (const [what, r] of [
    ['LSTAR', cpu.wrmsr(MSR.LSTAR, entry)],
    ['STAR', cpu.wrmsr(MSR.STAR, (0x23n << 48n) | (0x10n << 32n))],
    ['SYSCALL_MASK', cpu.wrmsr(MSR.SYSCALL_MASK, 0x47700n)],
    ['IDT', cpu.lidt({ base: idt, limit: 256 * 16 - 1 })],
    ['GDT', cpu.lgdt({ base: START_KERNEL_MAP + phys(b.__init_begin) + (sym('gdt_page') ?? 0n), limit: 16 * 8 - 1 })],
  ] as const) {
    const m = must(r, 'cpu setup', `setting ${what}`);
    if (!m.ok) return m;
  }
  phase('cpu setup');

  // The page tables from now on are written through the direct map, with paging on.
  const port = cpuPhysPort(cpu, true);
  const pageTables = new PageTableWriter(pt.root, port, tableFrames);

  // 3. The boot touch-ups, computed on a copy of the file's executable sections and written
  // where they changed a byte (text_poke_early: paging is on, protections are not yet).
  const space = vmlinuxTextSpace(image);
  const touchups = applyBootTouchups(
    space,
    vmlinuxTouchupTables(image),
    { sites: image.mcountSites.map((s) => s.address), fentry: b.__fentry__ },
    { start: b._stext, end: b._etext },
    vmlinuxTouchupContext(image, bootCpuData.value),
  );
  for (const region of space.regions) {
    const file = image.sectionByName(region.name);
    if (!file) continue;
    const w = writeChangedRuns(cpu, region.base, file.bytes, region.bytes);
    if (!w.ok) return w;
  }
  log(
    `touch-ups: ${touchups.staticCallSites} static call sites, ${touchups.ftraceNops} ftrace NOPs, preempt=${touchups.preemptMode}${touchups.uniprocessor ? `, ${touchups.lockPrefixesUp} lock prefixes patched to UP` : ''}`,
  );
  phase('touch-ups');
  if (options.afterTouchups) await options.afterTouchups({ cpu, image, bootCpuData: bootCpuData.value, touchups });

  // Working memory: everything above the image is the page allocator's.
  const frames = new FrameAllocator(imageEnd, options.ramBytes);
  const scratchPa = frames.allocContiguous(SCRATCH_BYTES / 4096);
  if (scratchPa === undefined) return err({ phase: 'setup', message: 'no contiguous memory for the hypervisor scratch buffer' });
  const scratch = new Scratch(cpu, scratchPa, SCRATCH_BYTES);
  const heki = new Heki(selectHekiBackend(cpu, scratch), hekiCountsBaseline(image));
  if (!(await heki.earlyInit())) log('heki: the hypervisor does not support Heki; continuing unprotected');

  // 4. free_initmem + mark_rodata_ro: final 4 KiB mappings of the image.
  const text = { start: roundDown(b._stext, PAGE), end: roundUp(b._etext, PAGE) };
  const ro = { start: roundDown(b.__start_rodata, PAGE), end: roundUp(b.__end_rodata, PAGE) };
  const initText = image.sectionByName('.init.text');
  for (let va = START_KERNEL_MAP + imageStart; va < START_KERNEL_MAP + imageEnd; va += MB2) {
    // Replace each 2 MiB mapping by a table of 4 KiB entries.
    const e = pageTables.mapTable(va, (i) => {
      const v = va + BigInt(i) * PAGE;
      let flags: bigint;
      if (v >= text.start && v < text.end) flags = PTE.G;
      else if (v >= ro.start && v < ro.end) flags = PTE.G | PTE.NX;
      else if (v >= text.end && v < ro.start) flags = PTE.G | PTE.NX;
      else flags = PTE.G | PTE.NX | PTE.RW;
      return phys(v) | flags | PTE_AD;
    });
    if (e) return err({ phase: 'mark_rodata_ro', message: `cannot split the kernel mapping: ${mapErrorMessage(e)}` });
  }
  // CPA alias processing: the direct-map alias of text and rodata becomes read-only too.
  for (let pa = imageStart; pa < imageEnd; pa += MB2) {
    const e = pageTables.mapTable(physToVirt(pa), (i) => {
      const off = BigInt(i) * PAGE;
      const v = START_KERNEL_MAP + pa + off;
      const readOnly = (v >= text.start && v < text.end) || (v >= text.end && v < ro.end);
      return (pa + off) | PTE.G | PTE.NX | PTE_AD | (readOnly ? 0n : PTE.RW);
    });
    if (e) return err({ phase: 'mark_rodata_ro', message: `cannot split the direct map: ${mapErrorMessage(e)}` });
  }
  // __flush_tlb_all(): a CR3 reload keeps global entries (CR4.PGE), and the early 2 MiB
  // mappings were global and writable, so toggle PGE to drop them too.
  const cr4 = cpu.readCr(4);
  for (const [what, r] of [
    ['flushing the TLB (CR3)', cpu.writeCr(3, pageTables.root)],
    ['flushing global TLB entries (CR4.PGE off)', cpu.writeCr(4, cr4 & ~CR4.PGE)],
    ['restoring CR4.PGE', cpu.writeCr(4, cr4)],
  ] as const) {
    const m = must(r, 'mark_rodata_ro', what);
    if (!m.ok) return m;
  }
  log(`mark_rodata_ro: text ${hex(text.start)}-${hex(text.end)} RX, rodata ${hex(ro.start)}-${hex(ro.end)} R, ${initText ? 'init text freed, ' : ''}data NX`);
  phase('mark_rodata_ro');

  // 5. heki_late_init.
  const I = MEM_ATTR.IMMUTABLE;
  const RW = MEM_ATTR.READ | MEM_ATTR.WRITE;
  const ranges: PageRange[] = [
    { pa: 0n, epa: phys(text.start), permissions: RW },
    { pa: phys(text.start), epa: phys(text.end), permissions: MEM_ATTR.READ | MEM_ATTR.EXEC | I },
    { pa: phys(text.end), epa: phys(ro.end), permissions: MEM_ATTR.READ | I },
    { pa: phys(ro.end), epa: options.ramBytes, permissions: RW },
  ];
  const late = await heki.lateInit({ cr0: CR0.WP, cr4: CR4.SMEP | CR4.SMAP | CR4.UMIP, ranges });
  if (!late.ok) {
    const st = late.status;
    const refused = st.ok ? {} : { refused: { step: late.step, refusal: refusalOf(st) } };
    return err({ phase: 'heki_late_init', message: `${late.step} refused: ${st.ok ? '' : st.name}`, ...refused });
  }
  log('heki: CR0.WP and CR4.SMEP|SMAP|UMIP pinned; text RX and rodata R locked immutable; boot text verified');
  phase('heki_late_init');
  return ok({
    cpu,
    image,
    pageTables,
    frames,
    heki,
    scratch,
    tableFrames,
    timings,
    bootCpuData: bootCpuData.value,
    touchups,
    uniprocPatched: touchups.uniprocessor,
  });
}

/** Runs closer than this are written as one (the bytes between are unchanged either way). */
const RUN_MERGE_GAP = 16;

/** Writes the runs where `now` differs from `file` (both at `base`) through the vCPU. */
function writeChangedRuns(cpu: GuestCpu, base: bigint, file: Uint8Array, now: Uint8Array): Result<void, BootError> {
  const n = Math.min(file.length, now.length);
  let i = 0;
  while (i < n) {
    if (file[i] === now[i]) {
      i++;
      continue;
    }
    const start = i;
    let end = i + 1;
    for (let j = end; j < n && j - end < RUN_MERGE_GAP; j++) if (file[j] !== now[j]) end = j + 1;
    const w = must(cpu.write(gva(base + BigInt(start)), now.subarray(start, end)), 'touch-ups', `patching 0x${(base + BigInt(start)).toString(16)}`);
    if (!w.ok) return w;
    i = end;
  }
  return ok(undefined);
}

function hex(v: bigint): string {
  return `0x${v.toString(16)}`;
}
