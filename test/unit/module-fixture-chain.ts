/**
 * Loading the fixture modules the way modprobe would: in dependency order (`.modinfo`
 * `depends=`), each linked against vmlinux's exports plus the exports of the modules loaded
 * before it. Shared by the module-core and module-end-state tests. Not a test file itself.
 */
import { readdirSync } from 'node:fs';
import { buildModuleImage, MODULES_VADDR, parseModuleFile, readModinfo, type ModuleImage, type SymbolResolver } from '../../shared/module/index.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { fixtures, readFixtureModule } from '../helpers/fixtures.ts';

/** `__mcount_loc` sites per module, from the fixtures README table (by file name). */
export const README_MCOUNT: Readonly<Record<string, number>> = {
  crc7: 0,
  cordic: 1,
  irqbypass: 6,
  failover: 7,
  virtio: 24,
  net_failover: 25,
  virtio_ring: 57,
  virtio_net: 68,
  'kvm-intel': 314,
  kvm: 1327,
};

/** `__jump_table` relocations per module from the README (3 per 16-byte entry). */
export const README_JUMP_RELOCATIONS: Readonly<Record<string, number>> = {
  crc7: 0,
  cordic: 0,
  irqbypass: 0,
  failover: 0,
  virtio: 0,
  net_failover: 0,
  virtio_ring: 30,
  virtio_net: 195,
  'kvm-intel': 2274,
  kvm: 834,
};

/** A fixture module file with its `.modinfo` name and dependencies. */
export interface FixtureModule {
  readonly file: string;
  readonly name: string;
  readonly depends: readonly string[];
  readonly bytes: Uint8Array;
}

/** Every fixture `.ko`, in an order where each module comes after its `depends=` (modprobe's). */
export function fixtureModulesInDependencyOrder(): FixtureModule[] {
  const files = readdirSync(fixtures.modulesDir)
    .filter((f) => f.endsWith('.ko'))
    .map((f) => f.slice(0, -3))
    .sort();
  const mods = files.map((file): FixtureModule => {
    const bytes = readFixtureModule(file);
    const elf = parseModuleFile(bytes);
    if (!elf.ok) throw new Error(`${file}: ${elf.error.message}`);
    const mi = readModinfo(elf.value);
    if (!mi.ok || !mi.value.name) throw new Error(`${file}: no modinfo name`);
    return { file, name: mi.value.name, depends: mi.value.depends, bytes };
  });
  const byName = new Map(mods.map((m) => [m.name, m]));
  const out: FixtureModule[] = [];
  const done = new Set<string>();
  const visit = (m: FixtureModule, stack: string[]): void => {
    if (done.has(m.name)) return;
    if (stack.includes(m.name)) throw new Error(`dependency cycle: ${[...stack, m.name].join(' -> ')}`);
    for (const d of m.depends) {
      const dep = byName.get(d);
      if (!dep) throw new Error(`${m.name} depends on ${d}, which is not a fixture`);
      visit(dep, [...stack, m.name]);
    }
    done.add(m.name);
    out.push(m);
  };
  for (const m of mods) visit(m, []);
  return out;
}

/** vmlinux's exports, then the exports of `loaded` modules (in load order). */
export function kernelAndModulesResolver(kernel: KernelImage, loaded: ReadonlyMap<string, ReadonlyMap<string, bigint>>): SymbolResolver {
  return (name) => {
    const v = kernel.exports.get(name);
    if (v !== undefined) return v;
    for (const exports of loaded.values()) {
      const a = exports.get(name);
      if (a !== undefined) return a;
    }
    return undefined;
  };
}

/** Per-CPU pointers handed to modules: above vmlinux's static per-CPU area, 64-byte aligned. */
export const PERCPU_BASE = 0x40000n;
/** Where init layouts go: high in the module area, away from the core layouts. */
export const INIT_AREA = MODULES_VADDR + 0x20000000n;

/** One loaded fixture module with how long it took to build. */
export interface BuiltFixture {
  readonly module: FixtureModule;
  readonly image: ModuleImage;
  readonly ms: number;
}

/**
 * Builds every fixture module in dependency order, core layouts one after another from
 * MODULES_VADDR with a guard page between them, init layouts likewise from {@link INIT_AREA}.
 * Throws naming the module on failure.
 */
export function buildFixtureChain(kernel: KernelImage): BuiltFixture[] {
  const loaded = new Map<string, ReadonlyMap<string, bigint>>();
  const out: BuiltFixture[] = [];
  let base = MODULES_VADDR;
  let initBase = INIT_AREA;
  let percpu = PERCPU_BASE;
  for (const m of fixtureModulesInDependencyOrder()) {
    const t0 = performance.now();
    const r = buildModuleImage(m.bytes, {
      base,
      initBase,
      percpuBase: percpu,
      fentry: kernel.boundaries.__fentry__,
      resolve: kernelAndModulesResolver(kernel, loaded),
    });
    const ms = performance.now() - t0;
    if (!r.ok) throw new Error(`${m.file}: ${r.error.message}`);
    loaded.set(r.value.name, r.value.exports);
    out.push({ module: m, image: r.value, ms });
    const end = (part: 'core' | 'init', from: bigint): bigint => r.value.groups.filter((g) => g.part === part).reduce((a, g) => (g.end > a ? g.end : a), from);
    base = end('core', base) + 0x1000n;
    initBase = end('init', initBase) + 0x1000n;
    percpu += r.value.percpu ? (BigInt(r.value.percpu.size) + 63n) & ~63n : 0n;
  }
  return out;
}
