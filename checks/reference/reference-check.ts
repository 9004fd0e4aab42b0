/**
 * `heki reference check`: boots the reference folder's CPU model on the real kernel, sets the
 * runtime state the real kernel's own init code left (static keys, static calls) through the
 * guest's ordinary authenticated paths, loads the folder's modules in its order at its section
 * addresses, and compares the kernel text and every dumped module section with the real bytes.
 *
 * TRUST: the runtime state is read off the real dump, so it cannot hide a touch-up the
 * simulator gets wrong: a key's or a call's state is one value for all its sites, set through
 * the same jump-label and static-call paths (and the verifier's checks of them) a running
 * kernel uses, so only bytes that those paths would write change. Every other byte is the
 * guest's boot and module loader's own.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { parseModuleFile, planSections, readModinfo } from '../../shared/module/index.ts';
import { vmlinuxTouchupTables } from '../../shared/kernel-image/touchup-tables.ts';
import { SiteOwners } from '../../shared/x86/touchups/site-owner.ts';
import type { GuestKernel } from '../../guest/kernel/guest-kernel.ts';
import { createMachineDetailed, type MachineError } from '../../machine/machine.ts';
import type { ReferenceFolder } from './reference-folder.ts';
import { compareSection, type SectionComparison } from './section-compare.ts';
import { setRuntimeState, type RuntimeStateReport } from './runtime-set.ts';
import { moduleSiteOwners } from './module-owners.ts';
import { inferPercpuPointer } from './runtime-state.ts';

/** A module the check did not load. */
export interface SkippedModule {
  readonly module: string;
  readonly reason: string;
}

/** What the check found. */
export interface ReferenceCheckReport {
  readonly model: string;
  /** The kernel's compared sections (`.text`). */
  readonly kernel: Readonly<Record<string, SectionComparison>>;
  /** Per module, its dumped sections. */
  readonly modules: Readonly<Record<string, Readonly<Record<string, SectionComparison>>>>;
  /** What was set; `staticKeysFromModules` of `staticKeys` were read off module text (keys with no kernel-text entry). */
  readonly runtime: RuntimeStateReport & { readonly staticKeysFromModules: number };
  readonly skipped: readonly SkippedModule[];
  /** Modules that did not load, with why: the simulator refused what the real kernel loaded. */
  readonly errors: readonly SkippedModule[];
  /** Differing bytes over every compared section. */
  readonly differing: number;
  /** Wall time of each phase in ms: machine start and boot, runtime state, module loads, comparison. */
  readonly ms: { readonly boot: number; readonly runtime: number; readonly modules: number; readonly compare: number };
}

/** How to run the check. */
export interface ReferenceCheckOptions {
  /** The model's name in the report (the folder as given, or the named model). */
  readonly name: string;
  /** Reads a module file of the folder's `loaded` list (`kvm.ko`); the error says why not. */
  readonly readModule: (file: string) => Result<Uint8Array, string>;
  /** The verifier's keys (absolute paths): module signing certificates and keys. */
  readonly keys: { readonly pubkeys: readonly string[]; readonly certs: readonly string[]; readonly revoked: readonly string[] };
}

/** Why the check could not run: bad input (exit 2) or a machine that did not start or boot (exit 1). */
export type ReferenceCheckError = MachineError;

interface ModuleFile {
  readonly file: string;
  readonly name: string;
  readonly bytes: Uint8Array;
  readonly sections: ReadonlyMap<string, bigint>;
  /** The per-CPU pointer the real kernel gave the module's `.data..percpu`, read off its real text. */
  readonly percpu: bigint | undefined;
}

/** Reads every module of `loaded` and pairs it with its reference sections; input errors name the file. */
function moduleFiles(ref: ReferenceFolder, read: ReferenceCheckOptions['readModule']): Result<ModuleFile[], string> {
  const out: ModuleFile[] = [];
  for (const file of ref.loaded) {
    const bytes = read(file);
    if (!bytes.ok) return bytes;
    const elf = parseModuleFile(bytes.value);
    if (!elf.ok) return err(`${file}: ${elf.error.message}`);
    const info = readModinfo(elf.value);
    const name = info.ok ? info.value.name : undefined;
    if (!name) return err(`${file}: .modinfo has no name`);
    const sections = ref.sections.get(name);
    if (!sections) return err(`${ref.dir}/reference.json: "sections" has no entry for module ${name} (${file}, in "loaded")`);
    const plan = planSections(elf.value);
    if (!plan.ok) return err(`${file}: ${plan.error.message}`);
    for (const s of plan.value.loadable) {
      // The real kernel lists every non-empty allocated section in /sys/module/<name>/sections.
      if (s.part === 'core' && s.size > 0 && !sections.has(s.name)) {
        return err(`${ref.dir}/reference.json: sections.${name} has no address for ${s.name} (${s.size} bytes in ${file}): not a dump of this module file`);
      }
    }
    for (const d of ref.dumped.get(name) ?? []) {
      const a = sections.get(d.name);
      if (a !== d.addr)
        return err(
          `${ref.dir}/reference.json: dumped.${name}.${d.name}.addr 0x${d.addr.toString(16)} is not sections.${name}.${d.name} (${a === undefined ? 'absent' : `0x${a.toString(16)}`})`,
        );
    }
    // pcpu_alloc()'s pointer is runtime state too: read it off the real text when the module has per-CPU data.
    let percpu: bigint | undefined;
    const realText = ref.dumped.get(name)?.find((d) => d.name === '.text');
    if (plan.value.percpu && realText) percpu = inferPercpuPointer(elf.value, plan.value.percpu.shndx, realText.addr, realText.bytes);
    out.push({ file, name, bytes: bytes.value, sections, percpu });
  }
  return ok(out);
}

/** Guest memory as the kernel reads it; undefined when not mapped. */
function readGuest(k: GuestKernel, va: bigint, len: number): Uint8Array | undefined {
  const r = k.cpu.read(gvaFromRegister(va), len);
  return r.ok ? r.value : undefined;
}

/** Runs the check (see the file comment). */
export async function checkReference(ref: ReferenceFolder, opts: ReferenceCheckOptions): Promise<Result<ReferenceCheckReport, ReferenceCheckError>> {
  const mods = moduleFiles(ref, opts.readModule);
  if (!mods.ok) return err({ kind: 'input', message: mods.error });
  for (const d of ref.dumped.keys()) {
    if (!mods.value.some((m) => m.name === d))
      return err({ kind: 'input', message: `${ref.dir}/reference.json: "dumped" has module ${d}, which "loaded" does not list` });
  }
  const t0 = performance.now();
  const m = await createMachineDetailed({ kernel: 'real', cpu: ref.model, keys: opts.keys, verifierSpare: false });
  if (!m.ok) return m;
  const machine = m.value;
  try {
    const { _stext, _etext } = machine.image.boundaries;
    if (ref.textAddr !== _stext || BigInt(ref.text.length) !== _etext - _stext) {
      return err({
        kind: 'input',
        message: `${ref.dir}/reference.json: kernel_text is ${ref.text.length} bytes at 0x${ref.textAddr.toString(16)}; this kernel's _stext.._etext is ${_etext - _stext} bytes at 0x${_stext.toString(16)} (a dump of another kernel?)`,
      });
    }
    const mark = machine.verdictMark();
    const b = await machine.boot();
    const k = machine.kernel;
    if (b.outcome !== 'allowed' || !k) {
      const why = machine.deniedSince(mark);
      return err({ kind: 'start', message: `the ${opts.name} guest did not boot: ${b.reason}${why.length ? `; verifier: ${why.join(' | ')}` : ''}` });
    }
    const image = machine.image;
    const t1 = performance.now();
    const textEnd = ref.textAddr + BigInt(ref.text.length);
    const inText = (va: bigint, len: number): Uint8Array | undefined =>
      va >= ref.textAddr && va + BigInt(len) <= textEnd ? ref.text.subarray(Number(va - ref.textAddr), Number(va - ref.textAddr) + len) : undefined;

    // The kernel's runtime state first, so each module load finds its keys as the real one did.
    const returnThunk = image.systemMap.address('__x86_return_thunk');
    const runtime = await setRuntimeState(k, { real: inText, returnThunk });

    const t2 = performance.now();
    const skipped: SkippedModule[] = ref.failed.map((f) => ({ module: f.replace(/\.ko$/, ''), reason: 'failed in the real boot' }));
    const errors: SkippedModule[] = [];
    for (const mod of mods.value) {
      const r = await k.modules.load(mod.bytes, { placement: { sections: mod.sections, ...(mod.percpu !== undefined ? { percpu: mod.percpu } : {}) } });
      if (!r.ok) errors.push({ module: mod.name, reason: r.error.message });
    }
    // Keys only modules use, which their init code may have set: read off the dumped sections.
    const dumpedAt = (va: bigint, len: number): Uint8Array | undefined => {
      for (const list of ref.dumped.values()) {
        for (const d of list)
          if (va >= d.addr && va + BigInt(len) <= d.addr + BigInt(d.bytes.length)) return d.bytes.subarray(Number(va - d.addr), Number(va - d.addr) + len);
      }
      return undefined;
    };
    const moduleKeys = await setRuntimeState(k, { real: dumpedAt, returnThunk, jumpOnly: true, except: runtime.decided });

    const t3 = performance.now();
    const kernelText = readGuest(k, ref.textAddr, ref.text.length);
    if (!kernelText)
      return err({ kind: 'start', message: `the guest's kernel text at 0x${ref.textAddr.toString(16)} (${ref.text.length} bytes) is not readable` });
    const kernelOwners = (): SiteOwners =>
      new SiteOwners(vmlinuxTouchupTables(image), {
        mcountSites: image.mcountSites.map((s) => s.address),
        jumpSites: image.jumpEntries.map((e) => ({ site: e.site, len: e.length })),
        trampolines: image.staticCalls.keys.map((s) => s.trampoline),
      });
    const kernel = { '.text': compareSection('.text', ref.textAddr, kernelText, ref.text, kernelOwners) };
    let differing = kernel['.text'].differing;

    const modules: Record<string, Record<string, SectionComparison>> = {};
    for (const [name, list] of ref.dumped) {
      const loaded = k.modules.loaded.get(name);
      if (!loaded) continue;
      let owners: SiteOwners | undefined;
      const out: Record<string, SectionComparison> = {};
      for (const d of list) {
        const ours = readGuest(k, d.addr, d.bytes.length) ?? new Uint8Array(d.bytes.length);
        out[d.name] = compareSection(d.name, d.addr, ours, d.bytes, () => (owners ??= moduleSiteOwners(loaded.image)));
        differing += out[d.name]!.differing;
      }
      modules[name] = out;
    }
    return ok({
      model: opts.name,
      kernel,
      modules,
      runtime: {
        staticKeys: runtime.staticKeys + moduleKeys.staticKeys,
        staticKeysFromModules: moduleKeys.staticKeys,
        staticCalls: runtime.staticCalls,
        problems: [...runtime.problems, ...moduleKeys.problems],
      },
      skipped,
      errors,
      differing,
      ms: { boot: Math.round(t1 - t0), runtime: Math.round(t2 - t1), modules: Math.round(t3 - t2), compare: Math.round(performance.now() - t3) },
    });
  } finally {
    await machine.dispose();
  }
}
