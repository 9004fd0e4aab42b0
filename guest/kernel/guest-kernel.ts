/**
 * The running guest kernel after boot: its memory manager, module loader, ftrace, static
 * keys, static calls, kprobes and BPF JIT, wired to one another (a module's ftrace sites and
 * jump labels join the kernel's when it loads and leave when it unloads).
 */
import { gva } from '../../shared/addr.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { KernelMm } from '../mm/kernel-mm.ts';
import { ModuleLoader, type LoadedModule } from '../modules/module-loader.ts';
import type { ModuleTouchupEnv } from '../../shared/module/module-finalize.ts';
import { vmlinuxTouchupContext } from '../../shared/kernel-image/touchup-tables.ts';
import { returnThunkSet, trampolineFunc } from '../../shared/x86/touchups/static-call-init.ts';
import { cpuWantsRethunkAt, type TouchupContext } from '../../shared/x86/touchups/context.ts';
import { TextPoker } from '../patching/text-poker.ts';
import { Ftrace, type FtraceSite } from '../patching/ftrace.ts';
import { JumpLabels } from '../patching/jump-labels.ts';
import { StaticCalls, type StaticCallSiteEntry } from '../patching/static-calls.ts';
import { Kprobes } from '../patching/kprobes.ts';
import { BpfJit } from '../bpf/bpf-jit.ts';
import type { BootedKernel } from './boot.ts';
import type { CpuView } from './cpu-detect.ts';
import { CORE_KERNEL, SmpAlternatives } from '../patching/smp-alternatives.ts';
import { kernelSmpLocks } from '../../shared/x86/smp-locks.ts';
import type { Heki } from '../heki/heki.ts';
import type { Scratch } from '../heki/scratch.ts';
import type { BumpFrameAllocator } from '../mm/page-table-writer.ts';
import { KernelLifecycle } from './lifecycle.ts';

/** A booted kernel's subsystems. */
export class GuestKernel {
  readonly cpu: GuestCpu;
  readonly image: KernelImage;
  readonly heki: Heki;
  readonly mm: KernelMm;
  readonly poker: TextPoker;
  readonly ftrace: Ftrace;
  readonly jumpLabels: JumpLabels;
  readonly staticCalls: StaticCalls;
  readonly kprobes: Kprobes;
  readonly modules: ModuleLoader;
  readonly bpf: BpfJit;
  /** The hypervisor scratch buffer boot reserved. */
  readonly scratch: Scratch;
  /** The page-table frame pool, when boot said which. */
  readonly tableFrames: BumpFrameAllocator | undefined;
  /** Reboot, panic, S4/S5, kexec. */
  readonly lifecycle: KernelLifecycle;
  /** The CPU model the kernel booted on, as its vCPU's CPUID gave it (`boot_cpu_data`). */
  readonly bootCpuData: CpuView;
  /** The kernel's touch-up context on that CPU (its thunks, stubs, static calls): one per kernel, for static calls and module loads. */
  readonly #touchups: TouchupContext;
  /** The SMP alternatives: lock-prefix lists and whether boot patched them to UP. */
  readonly smp: SmpAlternatives;

  constructor(booted: BootedKernel) {
    this.cpu = booted.cpu;
    this.bootCpuData = booted.bootCpuData;
    this.#touchups = vmlinuxTouchupContext(booted.image, booted.bootCpuData);
    this.scratch = booted.scratch;
    this.tableFrames = booted.tableFrames;
    this.image = booted.image;
    this.heki = booted.heki;
    this.mm = new KernelMm(booted.cpu, booted.pageTables, booted.frames, booted.heki);
    this.poker = new TextPoker(booted.heki.hv);
    const trampoline = booted.image.systemMap.address('ftrace_caller');
    if (trampoline === undefined) throw new Error('System.map has no ftrace_caller');
    this.ftrace = new Ftrace(this.poker, trampoline, booted.image.systemMap.address('ftrace_regs_caller') ?? trampoline);
    const inInit = kernelInitMemory(booted.image);
    const live = liveSites(booted.image);
    this.ftrace.addSites(live.ftrace);
    this.jumpLabels = new JumpLabels(this.poker);
    // Every entry is kept, so a key whose sites are all in init memory is still a key, but an
    // init one is never patched (jump_label_can_update), as jump_label_init marks it.
    this.jumpLabels.addEntries(
      booted.image.jumpEntries.map((e) => ({
        site: e.site,
        target: e.target,
        key: e.key,
        branch: (e.flags & 1) === 1,
        length: e.length as 2 | 5,
        init: inInit(e.site),
        current: inInit(e.site) ? new Uint8Array(e.length) : this.#read(e.site, e.length),
      })),
    );
    const map = booted.image.systemMap;
    const return0 = map.address('__static_call_return0');
    // __static_call_transform()'s return form for this CPU: jmp x86_return_thunk where
    // cpu_wants_rethunk_at(), else ret; int3 (shared/x86/touchups/context.ts).
    const touch = this.#touchups;
    this.staticCalls = new StaticCalls(
      this.poker,
      (va, len) => {
        const r = this.cpu.read(gva(va), len);
        return r.ok ? r.value : undefined;
      },
      { ...(return0 !== undefined ? { return0 } : {}), returnThunk: touch.symbols.x86ReturnThunk, rethunkAt: (site) => cpuWantsRethunkAt(touch, site) },
    );
    this.staticCalls.addKeys(booted.image.staticCalls.keys.map((k) => ({ key: k.key, name: k.name, trampoline: k.trampoline })));
    this.staticCalls.addSites(live.staticCalls);
    this.kprobes = new Kprobes(this.poker, (va) => this.#read(va, 1)[0], this.ftrace);
    this.smp = new SmpAlternatives(
      (patches) => this.poker.poke(patches),
      (va) => {
        const r = this.cpu.read(gva(va), 1);
        return r.ok ? r.value[0] : undefined;
      },
    );
    this.smp.add(CORE_KERNEL, live.smpLocks);
    if (booted.uniprocPatched === true) this.smp.markUniprocPatched();
    this.bpf = new BpfJit(booted.cpu, this.mm, booted.heki);
    this.lifecycle = new KernelLifecycle(booted.cpu, this.mm, booted.heki);
    this.modules = new ModuleLoader(
      booted.cpu,
      this.mm,
      booted.heki,
      booted.image,
      {
        loaded: (m) => this.#moduleLoaded(m),
        live: (m) => this.#moduleLive(m),
        unloaded: (m) => this.#moduleUnloaded(m),
      },
      () => this.#moduleTouchupEnv(),
    );
  }

  /** What a module load needs of the kernel's state: the CPU, UP patching, the keys as the text says. */
  #moduleTouchupEnv(): ModuleTouchupEnv {
    const ctx = this.#touchups;
    const thunks = returnThunkSet(ctx);
    return {
      ctx,
      uniprocessor: this.smp.uniprocPatched,
      staticKeyEnabled: (key) => this.jumpLabels.enabled(key),
      staticCallFunc: (key) => {
        const tramp = ctx.symbols.staticCallTrampoline(key);
        return tramp === undefined ? undefined : trampolineFunc(tramp, this.#read(tramp, 5), thunks);
      },
    };
  }

  #read(va: bigint, len: number): Uint8Array {
    const r = this.cpu.read(gva(va), len);
    return r.ok ? r.value : new Uint8Array(len);
  }

  #moduleLoaded(m: LoadedModule): void {
    const funcAt = new Map<bigint, string>();
    const secAddr = new Map(m.image.sections.map((s) => [s.shndx, s.addr] as const));
    for (const sym of m.image.elf.symbols) {
      const base = secAddr.get(sym.shndx);
      if (base !== undefined && sym.type === 2 /* STT_FUNC */) funcAt.set(base + sym.value, sym.name);
    }
    // MODULE_STATE_COMING: every site joins, init memory's too (ftrace_module_init,
    // jump_label_add_module); #moduleLive drops those once the module's init returned.
    this.ftrace.addSites(m.image.mcountSites.map((a) => ({ address: a, func: `${funcAt.get(a) ?? `0x${a.toString(16)}`} [${m.name}]` })));
    this.jumpLabels.addEntries(
      m.image.jumpEntries.map((e) => ({
        site: e.site,
        target: e.target,
        key: e.key,
        branch: (e.flags & 1) === 1,
        length: e.len,
        current: this.#read(e.site, e.len),
      })),
    );
    this.smp.add(m.name, m.image.smpLocks);
  }

  /**
   * MODULE_STATE_LIVE (do_init_module): jump labels in the init layout are never updated again
   * (jump_label_can_update() once the module is no longer COMING), and ftrace_free_mem() drops
   * the init layout's ftrace records, before the memory is freed.
   */
  #moduleLive(m: LoadedModule): void {
    const init = m.image.groups.filter((g) => g.part === 'init');
    const inInit = (a: bigint): boolean => init.some((g) => a >= g.start && a < g.end);
    this.ftrace.removeSites(m.image.mcountSites.filter(inInit));
    this.jumpLabels.retireSites(new Set(m.image.jumpEntries.filter((e) => inInit(e.site)).map((e) => e.site)));
  }

  #moduleUnloaded(m: LoadedModule): void {
    this.ftrace.removeSites(m.image.mcountSites);
    this.jumpLabels.removeSites(new Set(m.image.jumpEntries.map((e) => e.site)));
    this.smp.remove(m.name);
  }
}

/** What {@link liveSites} lists of one image. */
interface LiveSites {
  readonly ftrace: readonly FtraceSite[];
  readonly staticCalls: readonly StaticCallSiteEntry[];
  readonly smpLocks: readonly bigint[];
}

/** Per image (a KernelImage is never written to): every kernel booted or forked from it shares the lists. */
const liveSitesOf = new WeakMap<KernelImage, LiveSites>();

/**
 * The image's sites that outlive boot, as the running kernel's subsystems take them: ftrace's
 * and the static calls' live sites (init memory was freed at the end of boot, so runtime
 * ftrace and static_call_update never see its sites) and the core kernel's lock prefixes.
 * Made once per image: a kernel restored or forked from a booted one starts in milliseconds.
 * INVARIANT: the lists and their entries are frozen; subsystems keep them by reference.
 */
function liveSites(image: KernelImage): LiveSites {
  let s = liveSitesOf.get(image);
  if (!s) {
    const inInit = kernelInitMemory(image);
    s = Object.freeze({
      ftrace: Object.freeze(
        image.mcountSites
          .filter((x) => !inInit(x.address))
          .map((x) => Object.freeze({ address: x.address, func: image.systemMap.symbolize(x.address).replace(/\+0x0$/, '') })),
      ),
      staticCalls: Object.freeze(image.staticCalls.sites.filter((x) => !inInit(x.site)).map((x) => Object.freeze({ site: x.site, key: x.key, tail: x.tail }))),
      smpLocks: Object.freeze(kernelSmpLocks(image)),
    });
    liveSitesOf.set(image, s);
  }
  return s;
}

/**
 * Whether an address lies in the kernel's init memory, [__init_begin, __init_end): what
 * init_section_contains() tests and free_initmem() frees, `.init.text` and the built-in
 * `.exit.text` among it (arch/x86/kernel/vmlinux.lds.S). Without those symbols, `.init.text`.
 */
export function kernelInitMemory(image: KernelImage): (a: bigint) => boolean {
  const begin = image.systemMap.address('__init_begin');
  const end = image.systemMap.address('__init_end');
  if (begin !== undefined && end !== undefined && end > begin) return (a) => a >= begin && a < end;
  const t = image.sectionByName('.init.text');
  return (a) => t !== undefined && a >= t.vaddr && a < t.vaddr + BigInt(t.size);
}
