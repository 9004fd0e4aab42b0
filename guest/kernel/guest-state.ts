/**
 * The guest kernel's own bookkeeping as plain data: its page allocator, the page-table frame
 * pool, the Heki layer's counters, the vmalloc and module areas, the loaded modules, what
 * ftrace traces, the kprobes, the static calls' targets and the JITed programs.
 *
 * In a real kernel all of this lives in guest RAM, and a hibernation image or a migration
 * carries it with the rest of memory. The simulation keeps it in objects beside guest memory,
 * so it travels as one more (opaque, guest-owned) section of the VM's state image, and
 * {@link restoreGuestKernel} rebuilds the objects on the restored vCPU. Nothing here is
 * trusted by the host: it is the guest's, like its memory.
 *
 * What is not saved because it is read back from restored memory: the jump labels' and
 * static call sites' current bytes (GuestKernel's constructor reads them), the text the
 * module images were written into.
 */
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { Heki } from '../heki/heki.ts';
import { selectHekiBackend } from '../heki/backend-select.ts';
import { Scratch } from '../heki/scratch.ts';
import type { Counts } from '../heki/counters.ts';
import { BumpFrameAllocator, PageTableWriter } from '../mm/page-table-writer.ts';
import type { BpfProgram } from '../bpf/bpf-jit.ts';
import type { LoadedModuleState } from '../modules/module-loader.ts';
import { hekiCountsBaseline } from './boot.ts';
import { FrameAllocator, type FrameAllocatorState } from './frame-allocator.ts';
import { GuestKernel } from './guest-kernel.ts';
import { BOOT_TABLES } from './layout.ts';
import { cpuPhysPort } from './phys-port.ts';
import type { CpuView } from './cpu-detect.ts';

/** Version of {@link GuestKernelState}. */
export const GUEST_KERNEL_STATE_VERSION = 1;

/** The bookkeeping of a running kernel. */
export interface GuestKernelState {
  readonly version: number;
  /** The kernel it belongs to (System.map's `_stext`, as a check). */
  readonly stext: bigint;
  readonly pageTables: { readonly root: bigint; readonly nextTableFrame: bigint };
  readonly frames: FrameAllocatorState;
  readonly scratch: { readonly pa: bigint; readonly size: number };
  readonly heki: { readonly abi: number | undefined; readonly bootEnded: boolean; readonly counters: ReadonlyArray<[number, Counts]> };
  readonly areas: { readonly modules: Array<{ start: bigint; end: bigint }>; readonly vmalloc: Array<{ start: bigint; end: bigint }> };
  readonly modules: { readonly percpuNext: bigint; readonly loaded: readonly LoadedModuleState[] };
  readonly ftraceEnabled: readonly bigint[];
  readonly kprobes: ReadonlyArray<[bigint, number]>;
  /** Kprobes armed through ftrace, by site (absent in images made before they existed: none). */
  readonly ftraceKprobes?: readonly bigint[];
  readonly staticCalls: ReadonlyArray<[bigint, bigint | null]>;
  readonly bpf: readonly BpfProgram[];
  /** `boot_cpu_data` as the kernel detected it at boot (it lives in the kernel's memory). */
  readonly bootCpuData: CpuView;
  /** Whether the lock prefixes are patched to UP (`uniproc_patched`). */
  readonly uniprocPatched: boolean;
}

/** The kernel's bookkeeping now. Throws only on a broken invariant (a kernel booted without its table pool). */
export function saveGuestKernel(k: GuestKernel): GuestKernelState {
  if (!k.tableFrames) throw new Error('internal: the kernel does not know its page-table frame pool');
  const staticCalls: Array<[bigint, bigint | null]> = [];
  for (const key of k.staticCalls.keys()) {
    const f = k.staticCalls.current(key);
    if (f !== undefined) staticCalls.push([key, f]);
  }
  return {
    version: GUEST_KERNEL_STATE_VERSION,
    stext: k.image.boundaries._stext,
    pageTables: { root: k.mm.pageTables.root, nextTableFrame: k.tableFrames.next },
    frames: k.mm.frames.exportState(),
    scratch: { pa: k.scratch.pa, size: k.scratch.size },
    heki: k.heki.exportState(),
    areas: { modules: k.mm.modules.exportState(), vmalloc: k.mm.vmallocArea.exportState() },
    modules: k.modules.exportState(),
    ftraceEnabled: k.ftrace.enabledSites(),
    kprobes: k.kprobes.exportState(),
    ftraceKprobes: k.ftrace.kprobeSites(),
    staticCalls,
    bpf: [...k.bpf.programs.values()].map((p) => ({ ...p })),
    bootCpuData: k.bootCpuData,
    uniprocPatched: k.smp.uniprocPatched,
  };
}

/**
 * Rebuilds a running kernel on `cpu` from `state`, over memory (and protections) the VMM has
 * already restored. Nothing is written to guest memory and nothing is asked of the
 * hypervisor. Fails, naming why, when the state is not this kernel's.
 */
export function restoreGuestKernel(cpu: GuestCpu, image: KernelImage, state: GuestKernelState): Result<GuestKernel, string> {
  if (state.version !== GUEST_KERNEL_STATE_VERSION) return err(`guest kernel state version ${state.version} is not ${GUEST_KERNEL_STATE_VERSION}`);
  if (state.stext !== image.boundaries._stext) return err('the guest kernel state belongs to another kernel image');
  let frames: FrameAllocator;
  try {
    frames = FrameAllocator.fromState(state.frames);
  } catch (e) {
    return err(`the page allocator state does not fit: ${e instanceof Error ? e.message : String(e)}`);
  }
  const tableFrames = new BumpFrameAllocator(state.pageTables.nextTableFrame, BOOT_TABLES.end);
  const pageTables = new PageTableWriter(state.pageTables.root, cpuPhysPort(cpu, true), tableFrames);
  const scratch = new Scratch(cpu, state.scratch.pa, state.scratch.size);
  const heki = new Heki(selectHekiBackend(cpu, scratch), hekiCountsBaseline(image));
  heki.importState(state.heki);
  if (typeof state.bootCpuData !== 'object' || state.bootCpuData === null) return err('the guest kernel state has no boot_cpu_data');
  const k = new GuestKernel({ cpu, image, pageTables, frames, heki, scratch, tableFrames, timings: {}, bootCpuData: state.bootCpuData });
  if (state.uniprocPatched === true) k.smp.markUniprocPatched();
  k.mm.modules.importState(state.areas.modules);
  k.mm.vmallocArea.importState(state.areas.vmalloc);
  const mods = k.modules.restoreState(state.modules);
  if (!mods.ok) return mods;
  k.ftrace.restoreEnabled(state.ftraceEnabled);
  k.kprobes.importState(state.kprobes);
  k.ftrace.restoreKprobes(state.ftraceKprobes ?? []);
  for (const [key, f] of state.staticCalls) k.staticCalls.restoreCurrent(key, f);
  for (const p of state.bpf) k.bpf.programs.set(p.name, { ...p });
  return ok(k);
}
