/**
 * The guest kernel's module loader (kernel/module/main.c's load_module, simplified):
 * lay the module out in the module area as layout_sections() does, link it against the
 * kernel's and loaded modules' exports, NOP its ftrace sites, write it into freshly
 * allocated data pages, and ask the hypervisor to validate it. Only when the hypervisor has
 * granted the section permissions does the guest switch its own page tables to them
 * (text RX, rodata R, data RW NX) and register the module's exports, ftrace sites and jump
 * labels. Like modprobe, {@link ModuleLoader.modprobe} loads `depends=` first.
 *
 * Then what 6.1's do_init_module() does once the module's init function returned, in its
 * order: the module goes LIVE (listeners stop patching init-memory sites: jump labels, and
 * ftrace_free_mem() drops its init-text ftrace sites), module_enable_ro(mod, true) seals
 * ro_after_init, and do_free_init() frees the init layout (module_memfree(), a vfree of the
 * module area), so the next module's allocation may reuse it. Under Heki the hypervisor must
 * first agree (KVM_HC_HEKI_FREE_MODULE_INIT): it releases the init pages, which it locked at
 * the load, and seals ro_after_init. When it refuses, the init layout stays until unload and
 * ro_after_init stays writable, as the hypervisor left them.
 *
 * Not modelled: running the module's constructors and init function (nothing in the
 * simulated guest executes module code), copying per-CPU initial data to each CPU, the
 * exception table and kallsyms (trim_init_extable(), the switch to core_kallsyms).
 */
import { gva } from '../../shared/addr.ts';
import {
  buildModuleImage,
  normalizeModuleName,
  parseModuleFile,
  readModinfo,
  type GroupRange,
  type ModuleImage,
  type PlacedSectionRef,
} from '../../shared/module/index.ts';
import { allocateModuleMemory, type ModulePlacement } from './module-memory.ts';

export type { ModulePlacement } from './module-memory.ts';
import type { ModuleTouchupEnv } from '../../shared/module/module-finalize.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import type { Heki } from '../heki/heki.ts';
import { PROT, type KernelMm } from '../mm/kernel-mm.ts';
import type { Prot } from '../heki/counters.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import { failed, fromMm, prefixed, refusalOf, refused, type GuestOpError } from '../heki/refusal.ts';

/** Where module files come from (userspace hands the kernel the bytes). */
export interface ModuleSource {
  /** The bytes of `<name>.ko`, or undefined when there is no such file. */
  read(name: string): Uint8Array | undefined;
  /** Where it looks, for messages. */
  readonly where: string;
}

/** A module the guest has loaded. */
export interface LoadedModule {
  readonly name: string;
  readonly depends: readonly string[];
  readonly image: ModuleImage;
  readonly core: { va: bigint; pages: number };
  /** The init layout's memory while the module holds it: undefined once do_init_module freed it. */
  readonly init: { va: bigint; pages: number } | undefined;
  readonly exports: ReadonlyMap<string, bigint>;
  /**
   * What the module was built from: the file init_module got and the bases it was linked at,
   * so a restored kernel rebuilds the same image (hibernation, migration).
   */
  readonly source?: { readonly file: Uint8Array; readonly initBase: bigint; readonly percpuBase: bigint; readonly placed?: readonly PlacedSectionRef[] };
}

/** Options of {@link ModuleLoader.load}. */
export interface LoadOptions {
  /** Put the sections at these addresses instead of the loader's own layout. */
  readonly placement?: ModulePlacement;
}

/** A loaded module as plain data (see {@link ModuleLoader.exportState}). */
export interface LoadedModuleState {
  readonly file: Uint8Array;
  readonly core: { va: bigint; pages: number };
  readonly init: { va: bigint; pages: number } | undefined;
  readonly initBase: bigint;
  readonly percpuBase: bigint;
  /** The sections' addresses, when the load chose them ({@link LoadOptions.placement}). */
  readonly placed?: readonly PlacedSectionRef[];
}

/** Notified when modules come and go (ftrace, jump labels). */
export interface ModuleListener {
  /** MODULE_STATE_COMING: the module's sites join, init-memory ones included. */
  loaded(m: LoadedModule): void;
  /**
   * MODULE_STATE_LIVE, then ftrace_free_mem() of the init layout: sites in init memory are
   * never patched again (called before the init layout is freed, and for every restored module).
   */
  live(m: LoadedModule): void;
  unloaded(m: LoadedModule): void;
}

/** First per-CPU offset handed to modules: past the kernel's static per-CPU area. */
const PERCPU_MODULE_BASE = 0x10_0000n;

/** Protections at the load (module_enable_ro(mod, false): ro_after_init stays writable for init). */
const groupProt: Record<GroupRange['group'], Prot> = { text: PROT.RX, ro: PROT.RO, ro_after_init: PROT.RW, rw: PROT.RW };

/** The loader. */
export class ModuleLoader {
  readonly loaded = new Map<string, LoadedModule>();
  #percpuNext = PERCPU_MODULE_BASE;

  constructor(
    private readonly cpu: GuestCpu,
    private readonly mm: KernelMm,
    private readonly heki: Heki,
    private readonly kernel: KernelImage,
    private readonly listener: ModuleListener,
    /** The kernel's CPU and key state a module load depends on (module_finalize, COMING notifiers). */
    private readonly touchups: () => ModuleTouchupEnv,
  ) {}

  /** An exported symbol of the kernel or of a loaded module. */
  resolve(name: string): bigint | undefined {
    const k = this.kernel.exports.get(name);
    if (k !== undefined) return k;
    for (const m of this.loaded.values()) {
      const v = m.exports.get(name);
      if (v !== undefined) return v;
    }
    return undefined;
  }

  /**
   * Loads `name` (either spelling, `-` or `_`: module-name.ts) from `source` after its
   * dependencies, like modprobe. A refusal of a dependency is a refusal of the whole load.
   */
  async modprobe(given: string, source: ModuleSource, chain: readonly string[] = []): Promise<Result<LoadedModule[], GuestOpError>> {
    const name = normalizeModuleName(given);
    if (chain.includes(name)) return err(failed(`dependency cycle: ${[...chain, name].join(' -> ')}`));
    const existing = this.loaded.get(name);
    if (existing) return ok([]);
    const file = source.read(name);
    if (!file) return err(failed(`module ${name} not found in ${source.where}`));
    const elf = parseModuleFile(file);
    if (!elf.ok) return err(failed(`${name}: ${elf.error.message}`));
    const info = readModinfo(elf.value);
    if (!info.ok) return err(failed(`${name}: ${info.error.message}`));
    const done: LoadedModule[] = [];
    for (const dep of info.value.depends) {
      const r = await this.modprobe(dep, source, [...chain, name]);
      if (!r.ok) return err(prefixed(r.error, `${name} needs ${dep}: `));
      done.push(...r.value);
    }
    const m = await this.load(file);
    if (!m.ok) return m;
    return ok([...done, m.value]);
  }

  /** Loads one module file (its dependencies must be loaded already). */
  async load(file: Uint8Array, opts: LoadOptions = {}): Promise<Result<LoadedModule, GuestOpError>> {
    const elf = parseModuleFile(file);
    if (!elf.ok) return err(failed(elf.error.message));
    const info = readModinfo(elf.value);
    if (!info.ok) return err(failed(info.error.message));
    const name = info.value.name;
    if (!name) return err(failed('.modinfo has no name'));
    if (this.loaded.has(name)) return err(failed(`module ${name} is already loaded`));
    const missing = info.value.depends.filter((d) => !this.loaded.has(d));
    if (missing.length) return err(failed(`module ${name} needs ${missing.join(', ')} loaded first`));

    const percpuBase = opts.placement?.percpu ?? this.#percpuNext;
    const mem = await allocateModuleMemory(this.mm, elf.value, name, percpuBase, opts.placement);
    if (!mem.ok) return mem;
    const { core, init, initBase, placed } = mem.value;
    const release = async (): Promise<void> => {
      await this.mm.vfree(core.va, core.pages, 'modules');
      if (init) await this.mm.vfree(init.va, init.pages, 'modules');
    };
    const built = buildModuleImage(file, {
      base: core.va,
      initBase,
      percpuBase,
      resolve: (sym) => this.resolve(sym),
      fentry: this.kernel.boundaries.__fentry__,
      touchups: this.touchups(),
      ...(placed ? { placed } : {}),
    });
    if (!built.ok) {
      await release();
      return err(failed(`${name}: ${built.error.message}`));
    }
    const image = built.value;
    for (const s of image.sections) {
      if (s.nobits || s.bytes.length === 0) continue;
      if (!this.cpu.write(gva(s.addr), s.bytes).ok) {
        await release();
        return err(failed(`${name}: cannot write section ${s.name} at 0x${s.addr.toString(16)}`));
      }
    }
    // The signed file goes to the hypervisor from a kernel buffer, as init_module copies it.
    const bufPages = Math.ceil(file.length / 4096);
    const buf = await this.mm.vmalloc(bufPages, PROT.RW);
    if (!buf.ok) {
      await release();
      return err(fromMm(buf, `${name}: `));
    }
    if (!this.cpu.write(gva(buf.value.va), file).ok) {
      await this.mm.vfree(buf.value.va, bufPages);
      await release();
      return err(failed(`${name}: cannot copy the module image`));
    }
    const v = await this.heki.hv.validateModule!({
      name,
      imageVa: buf.value.va,
      imageLen: file.length,
      sections: image.sections.map((s) => ({ shndx: s.shndx, gva: s.addr, size: s.size })),
      ...(image.percpu ? { percpu: image.percpu.addr } : {}),
    });
    await this.mm.vfree(buf.value.va, bufPages);
    if (!v.ok) {
      await release();
      return err(refused(refusalOf(v), `the hypervisor refused module ${name}: ${v.name}`));
    }
    if (image.percpu) this.#percpuNext = (percpuBase + BigInt(image.percpu.size) + 0xfffn) & ~0xfffn;
    for (const g of image.groups) {
      const r = await this.mm.adopt(g.start, Number((g.end - g.start) / 4096n), groupProt[g.group]);
      if (!r.ok) return err(fromMm(r, `${name}: `));
    }
    const m: LoadedModule = {
      name,
      depends: info.value.depends,
      image,
      core,
      init,
      exports: image.exports,
      source: { file: Uint8Array.from(file), initBase, percpuBase, ...(placed ? { placed } : {}) },
    };
    this.loaded.set(name, m);
    this.listener.loaded(m);
    return ok(await this.#initDone(m));
  }

  /**
   * do_init_module() after `mod->init` returned (kernel/module/main.c), in its order: LIVE and
   * ftrace_free_mem() (the listener), module_enable_ro(mod, true), then do_free_init(). The
   * hypervisor changes the permissions first; the guest's tables follow, then the memory goes
   * back to the module area. Returns the module as it stays loaded.
   */
  async #initDone(m: LoadedModule): Promise<LoadedModule> {
    this.listener.live(m);
    const s = await this.heki.hv.freeModuleInit?.(m.name);
    if (!s?.ok) return m;
    const pagesOf = (g: GroupRange): number => Number((g.end - g.start) / 4096n);
    for (const g of m.image.groups) if (g.part === 'core' && g.group === 'ro_after_init') await this.mm.adopt(g.start, pagesOf(g), PROT.RO);
    if (!m.init) return m;
    for (const g of m.image.groups) if (g.part === 'init') await this.mm.adopt(g.start, pagesOf(g), PROT.RW);
    await this.mm.vfree(m.init.va, m.init.pages, 'modules');
    const live: LoadedModule = { ...m, init: undefined };
    this.loaded.set(m.name, live);
    return live;
  }

  /** The loaded modules (in load order) and the next per-CPU offset, as plain data. */
  exportState(): { percpuNext: bigint; loaded: LoadedModuleState[] } {
    const loaded = [...this.loaded.values()].map((m) => {
      if (!m.source) throw new Error(`internal: module ${m.name} has no source record`);
      return {
        file: m.source.file,
        core: { ...m.core },
        init: m.init && { ...m.init },
        initBase: m.source.initBase,
        percpuBase: m.source.percpuBase,
        ...(m.source.placed ? { placed: m.source.placed } : {}),
      };
    });
    return { percpuNext: this.#percpuNext, loaded };
  }

  /**
   * Takes a restored kernel's modules back: each image is rebuilt from its file at the same
   * addresses, in load order (so each links against the same exports), and announced to the
   * listeners. Nothing is written and the hypervisor is not asked: the memory, the page
   * tables and the protections came back with the image.
   */
  restoreState(s: { percpuNext: bigint; loaded: readonly LoadedModuleState[] }): Result<void, string> {
    for (const r of s.loaded) {
      const built = buildModuleImage(r.file, {
        base: r.core.va,
        initBase: r.initBase,
        percpuBase: r.percpuBase,
        resolve: (sym) => this.resolve(sym),
        fentry: this.kernel.boundaries.__fentry__,
        ...(r.placed ? { placed: r.placed } : {}),
        touchups: this.touchups(),
      });
      if (!built.ok) return err(`restoring a module: ${built.error.message}`);
      const image = built.value;
      const name = image.modinfo.name ?? image.name;
      const m: LoadedModule = {
        name,
        depends: image.modinfo.depends,
        image,
        core: r.core,
        init: r.init,
        exports: image.exports,
        source: { file: r.file, initBase: r.initBase, percpuBase: r.percpuBase, ...(r.placed ? { placed: r.placed } : {}) },
      };
      this.loaded.set(name, m);
      // Every saved module had finished its init: the image was taken between loads.
      this.listener.loaded(m);
      this.listener.live(m);
    }
    this.#percpuNext = s.percpuNext;
    return ok(undefined);
  }

  /** Unloads `name` (either spelling, as rmmod normalises it); refused while another loaded module depends on it. */
  async unload(given: string): Promise<Result<void, GuestOpError>> {
    const name = normalizeModuleName(given);
    const m = this.loaded.get(name);
    if (!m) return err(failed(`module ${name} is not loaded`));
    const users = [...this.loaded.values()].filter((o) => o.depends.includes(name)).map((o) => o.name);
    if (users.length) return err(failed(`module ${name} is in use by ${users.join(', ')}`));
    const s = await this.heki.hv.unloadModule!(name);
    if (!s.ok) return err(refused(refusalOf(s), `the hypervisor refused to unload ${name}: ${s.name}`));
    this.listener.unloaded(m);
    this.loaded.delete(name);
    // The hypervisor made every page data-only; the guest's tables follow, then the memory goes back.
    for (const g of m.image.groups) if (g.part === 'core' || m.init) await this.mm.adopt(g.start, Number((g.end - g.start) / 4096n), PROT.RW);
    await this.mm.vfree(m.core.va, m.core.pages, 'modules');
    if (m.init) await this.mm.vfree(m.init.va, m.init.pages, 'modules');
    return ok(undefined);
  }
}
