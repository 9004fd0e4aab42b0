/**
 * The verifier side of module loads for the module-end-state tests: the fixture kernel's
 * signed manifest, a verifier trusting the Debian signing certificate, and a guest that lays
 * the fixture modules out and links them as the loader does. Not a test file itself.
 */
import { readFileSync } from 'node:fs';
import { PAGE_SIZE_N } from '../../shared/addr.ts';
import { PROTOCOL_VERSION, type PlacedSection, type Verdict } from '../../shared/protocol.ts';
import { buildModuleImage, MODULES_VADDR, type ModuleImage } from '../../shared/module/index.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { indexManifest, type KernelManifest } from '../../verifier-vm/manifest.ts';
import { buildManifestBody } from '../../tools/manifest-builder.ts';
import { manifestTouchupContext } from '../../verifier-vm/end-state/kernel-text-prediction.ts';
import { DEFAULT_CPU_MODEL } from '../../shared/x86/cpu-models-builtin.ts';
import { moduleEndStatePlugin } from '../../verifier-vm/plugins/module-end-state.ts';
import { modulePkcs7Plugin, moduleSignaturePlugin } from '../../verifier-vm/plugins/module-signature.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import type { AnyPlugin } from '../../verifier-vm/plugin-api.ts';
import { fixtures, loadFixtureKernel } from '../helpers/fixtures.ts';
import { INIT_AREA, PERCPU_BASE, fixtureModulesInDependencyOrder, type FixtureModule } from './module-fixture-chain.ts';

/** The VM the requests name. */
export const VM = 'vm0';

let manifestPromise: Promise<KernelManifest> | undefined;
/** The fixture kernel's manifest (built once). */
export const manifest = (): Promise<KernelManifest> =>
  (manifestPromise ??= loadFixtureKernel().then((k) =>
    indexManifest(buildManifestBody(k, { kernel: 'linux-6.1.0-56-amd64', vmlinuzSha256: '00'.repeat(32) }), '0123456789abcdef'),
  ));

function keyring(): Keyring {
  const r = Keyring.fromData({
    ed25519: [],
    certificates: [{ der: new Uint8Array(readFileSync(fixtures.signingKeyDer)), role: 'module-signing' }],
    revoked: { ed25519KeyIds: [], x509Sha256: [] },
  });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

/** The plugins a module load needs. */
export const PLUGINS = [moduleSignaturePlugin, modulePkcs7Plugin, moduleEndStatePlugin] as AnyPlugin[];

/** A verifier with `plugins` and the fixture manifest. */
export async function verifier(plugins: AnyPlugin[] = PLUGINS): Promise<Verifier> {
  return new Verifier({ keyring: keyring(), plugins, manifest: await manifest() });
}

/** The guest side: lays out and links `m` against the manifest and the modules loaded so far. */
export class Guest {
  base = MODULES_VADDR;
  initBase = INIT_AREA;
  percpu = PERCPU_BASE;
  readonly exports = new Map<string, ReadonlyMap<string, bigint>>();
  constructor(readonly m: KernelManifest) {}

  build(mod: FixtureModule): ModuleImage {
    const r = buildModuleImage(mod.bytes, {
      base: this.base,
      initBase: this.initBase,
      percpuBase: this.percpu,
      fentry: this.m.fentry,
      resolve: (n) => this.m.exports.get(n) ?? [...this.exports.values()].map((e) => e.get(n)).find((v) => v !== undefined),
      // module_finalize() for the VM's CPU model; no boot was verified, so no key state is known.
      touchups: {
        ctx: manifestTouchupContext(this.m, DEFAULT_CPU_MODEL)!,
        uniprocessor: false,
        staticKeyEnabled: () => undefined,
        staticCallFunc: () => undefined,
      },
    });
    if (!r.ok) throw new Error(`${mod.file}: ${r.error.message}`);
    const img = r.value;
    const end = (part: 'core' | 'init', from: bigint) => img.groups.filter((g) => g.part === part).reduce((a, g) => (g.end > a ? g.end : a), from);
    this.base = end('core', this.base) + PAGE_SIZE_N;
    this.initBase = end('init', this.initBase) + PAGE_SIZE_N;
    this.percpu += img.percpu ? (BigInt(img.percpu.size) + 63n) & ~63n : 0n;
    return img;
  }
}

/** Placed sections plus the per-CPU pointer, which travels beside them (it is not module memory). */
export type Placed = PlacedSection[] & { percpu?: bigint };

/** The request the core would send: each placed section's snapshot (NOBITS without bytes). */
export function sectionsOf(img: ModuleImage): Placed {
  const s: Placed = img.sections.map((x) => ({ shndx: x.shndx, addr: x.addr, bytes: x.nobits ? new Uint8Array(0) : Uint8Array.from(x.bytes), size: x.size }));
  if (img.percpu) s.percpu = img.percpu.addr;
  return s;
}

let nextId = 1;
/** Asks `v` for the end of a module's init. */
export function initFree(v: Verifier, name: string): Verdict {
  return v.verify({ v: PROTOCOL_VERSION, id: nextId++, vm: VM, kind: 'module-init-free', name });
}
/** Asks `v` to load a module. */
export function load(v: Verifier, name: string, image: Uint8Array, sections: Placed): Verdict {
  const percpu = sections.percpu;
  return v.verify({
    v: PROTOCOL_VERSION,
    id: nextId++,
    vm: VM,
    kind: 'module-load',
    name,
    image,
    sections: [...sections],
    ...(percpu !== undefined ? { percpu } : {}),
  });
}
/** Asks `v` to unload a module. */
export function unload(v: Verifier, name: string): Verdict {
  return v.verify({ v: PROTOCOL_VERSION, id: nextId++, vm: VM, kind: 'module-unload', name });
}

/** Loads every fixture module in dependency order; returns the guest, the images and the verdicts. */
export async function loadAll(v: Verifier): Promise<{ guest: Guest; images: Map<string, { mod: FixtureModule; img: ModuleImage }>; ms: Map<string, number> }> {
  const guest = new Guest(await manifest());
  const images = new Map<string, { mod: FixtureModule; img: ModuleImage }>();
  const ms = new Map<string, number>();
  for (const mod of fixtureModulesInDependencyOrder()) {
    const img = guest.build(mod);
    const t0 = performance.now();
    const verdict = load(v, mod.name, mod.bytes, sectionsOf(img));
    ms.set(mod.file, performance.now() - t0);
    if (!verdict.ok) throw new Error(`${mod.file}: ${verdict.reason}`);
    guest.exports.set(img.name, img.exports);
    images.set(mod.name, { mod, img });
  }
  return { guest, images, ms };
}
