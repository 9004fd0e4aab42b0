/**
 * A testing kit for verifier plugins (`heki-sim/plugin-testing`): a verifier engine in the
 * test's own process, set up the way the verifier worker sets it up (verifier-vm/worker.ts:
 * the built-in plugins first, then the plugins under test, in order, with per-plugin
 * configuration), over a small synthetic kernel manifest, so a test can send protocol
 * requests and read verdicts without booting anything.
 *
 * ```ts
 * import { pluginTestVerifier, patchItem, ftraceCall, NOP5, SYNTHETIC } from 'heki-sim/plugin-testing';
 * import plugin from '../verifier-vm/my-policy.ts';
 *
 * const v = pluginTestVerifier({ plugins: [plugin], pluginConfig: { 'my-policy': { ... } } });
 * const site = SYNTHETIC.mcountSites[0];
 * const verdict = v.textPatch([patchItem('ftrace', site, NOP5, ftraceCall(site, SYNTHETIC.ftraceCaller))]);
 * ```
 *
 * The engine is the real one (verifier-vm/verifier.ts): the same shape checks, the same
 * combination of decisions (default deny), the same commit calls. What differs from a run is
 * only where requests come from: here the test writes them; in `heki run` the core builds
 * them from frozen guest memory.
 */
import { createHash } from 'node:crypto';
import { PROTOCOL_VERSION, type PatchItem, type Verdict, type VerifyRequest } from '../shared/protocol.ts';
import { Keyring } from '../verifier-vm/keyring.ts';
import { checkVmConfigs } from '../verifier-vm/vm-config.ts';
import type { WorkerInit } from '../shared/worker-api.ts';
import { indexManifest, type KernelManifest, type ManifestBody } from '../verifier-vm/manifest.ts';
import type { AnyPlugin, PluginAnswer, VerifierPlugin, VmState } from '../verifier-vm/plugin-api.ts';
import { BUILTIN_PLUGINS } from '../verifier-vm/plugins/index.ts';
import { Verifier } from '../verifier-vm/verifier.ts';

export { BUILTIN_PLUGINS };

const hex = (a: bigint): string => a.toString(16);

/**
 * Addresses of the synthetic kernel the kit's default manifest describes: a 64 KiB `.text`,
 * a 4 KiB `.init.text`, an 8 KiB `.rodata`, a few ftrace sites and jump labels, one export.
 */
export const SYNTHETIC = {
  /** Start of `.text` (also `_stext`). */
  text: 0xffffffff81000000n,
  textSize: 0x10000,
  /** Start of `.init.text` (freed after boot: patches there are refused once boot is verified). */
  initText: 0xffffffff83000000n,
  initTextSize: 0x1000,
  rodata: 0xffffffff82000000n,
  rodataSize: 0x2000,
  /** The ftrace trampolines an ftrace call may target. */
  ftraceCaller: 0xffffffff81001000n,
  ftraceRegsCaller: 0xffffffff81001100n,
  /** `__fentry__`: not an allowed ftrace target. */
  fentry: 0xffffffff81001200n,
  /** The `__mcount_loc` sites in `.text`. */
  mcountSites: [0xffffffff81000100n, 0xffffffff81000200n] as readonly [bigint, bigint],
  /** An `__mcount_loc` site in `.init.text`. */
  initMcountSite: 0xffffffff83000010n,
  /** A 2-byte and a 5-byte jump label in `.text`, with their targets. */
  jump2: { site: 0xffffffff81000300n, target: 0xffffffff81000340n },
  jump5: { site: 0xffffffff81000400n, target: 0xffffffff81000800n },
  /** `printk`, the one exported function, away from every patch site. */
  printk: 0xffffffff81002000n,
} as const;

/** The 5-byte NOP an ftrace site holds when tracing is off (`0f 1f 44 00 00`). */
export const NOP5: Uint8Array = Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00);
/** The 2-byte NOP of a short jump label (`66 90`). */
export const NOP2: Uint8Array = Uint8Array.of(0x66, 0x90);

function rel32(op: number, site: bigint, target: bigint): Uint8Array {
  const rel = target - (site + 5n);
  if (rel < -(1n << 31n) || rel >= 1n << 31n) throw new RangeError(`target 0x${hex(target)} is out of rel32 reach of 0x${hex(site)}`);
  const b = new Uint8Array(5);
  b[0] = op;
  new DataView(b.buffer).setInt32(1, Number(rel), true);
  return b;
}

/** `e8 rel32` at `site` calling `target`: what ftrace writes to turn a site on. */
export function ftraceCall(site: bigint, target: bigint): Uint8Array {
  return rel32(0xe8, site, target);
}

/** `e9 rel32` at `site` jumping to `target`: a 5-byte jump label turned on. */
export function jump5(site: bigint, target: bigint): Uint8Array {
  return rel32(0xe9, site, target);
}

/** The bytes a synthetic section holds (a pattern seeded by its name); the manifest hashes them. */
export function syntheticSectionBytes(name: string, size: number): Uint8Array {
  let seed = 0;
  for (const c of name) seed = (seed * 31 + c.charCodeAt(0)) & 0xff;
  return Uint8Array.from({ length: size }, (_, i) => (seed + i * 7) & 0xff);
}

/** The synthetic kernel's manifest body (kernel name `synthetic`), a fresh object each call. */
export function syntheticManifestBody(): ManifestBody {
  const S = SYNTHETIC;
  const sec = (name: string, vaddr: bigint, size: number) => ({
    name,
    vaddr: hex(vaddr),
    paddr: hex(vaddr - 0xffffffff80000000n),
    size,
    sha256: createHash('sha256').update(syntheticSectionBytes(name, size)).digest('hex'),
  });
  return {
    kernel: 'synthetic',
    vmlinuzSha256: '00'.repeat(32),
    sections: [sec('.text', S.text, S.textSize), sec('.rodata', S.rodata, S.rodataSize), sec('.init.text', S.initText, S.initTextSize)],
    symbols: { _stext: hex(S.text), _etext: hex(S.text + BigInt(S.textSize)) },
    mcountSites: [...S.mcountSites, S.initMcountSite].map(hex),
    jumpEntries: [
      { site: hex(S.jump2.site), target: hex(S.jump2.target), key: hex(0xffffffff82a00000n), len: 2 },
      { site: hex(S.jump5.site), target: hex(S.jump5.target), key: hex(0xffffffff82a00010n), len: 5 },
    ],
    exports: { printk: hex(S.printk) },
    ftraceTrampolines: { ftrace_caller: hex(S.ftraceCaller), ftrace_regs_caller: hex(S.ftraceRegsCaller) },
    fentry: hex(S.fentry),
  };
}

/**
 * A text-patch item. `currentBytes` (what the core found in memory) defaults to `oldBytes`,
 * the honest case; pass it to test a guest whose belief differs from memory.
 */
export function patchItem(kind: PatchItem['kind'], site: bigint, oldBytes: Uint8Array, newBytes: Uint8Array, currentBytes: Uint8Array = oldBytes): PatchItem {
  return { kind, site, oldBytes, newBytes, currentBytes };
}

type WithoutHeader<R> = R extends unknown ? Omit<R, 'v' | 'id' | 'vm'> & { readonly v?: number; readonly id?: number; readonly vm?: string } : never;

/** A protocol request without its header: `v`, `id` and `vm` are filled in when absent. */
export type RequestInput = WithoutHeader<VerifyRequest>;

/** Per-plugin configuration, by plugin name (what the VMM passes as `pluginConfig`). */
export type PluginConfig = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/**
 * A plugin of any request kinds (a `VerifierPlugin<'text-patch' | 'module-load'>` is not an
 * `AnyPlugin` to TypeScript, since `decide` takes the narrower requests; the engine only
 * gives a plugin the kinds it claims).
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type SomePlugin = VerifierPlugin<any, PluginAnswer>;

/** How {@link pluginTestVerifier} sets the engine up. */
export interface PluginTestOptions {
  /** The plugins under test; they run after the built-ins, in this order. */
  readonly plugins?: readonly SomePlugin[];
  /**
   * Which built-in plugins run first: `true` (default) all of them, as in a real verifier;
   * `false` none, to see the plugin under test alone (a request it abstains on is then denied
   * by default); or a list of built-in plugin names.
   */
  readonly builtins?: boolean | readonly string[];
  /**
   * The kernel manifest plugins see as `ctx.manifest`: by default the synthetic kernel's
   * ({@link syntheticManifestBody}); a body or an indexed manifest of your own; or `null` for
   * a verifier that has none yet.
   */
  readonly manifest?: ManifestBody | KernelManifest | null;
  /** Configuration by plugin name (`ctx.config` of each plugin). */
  readonly pluginConfig?: PluginConfig;
  /** The keyring (default: empty). */
  readonly keyring?: Keyring;
  /** The VM requests come from by default (default `vm0`, as in `heki run`). */
  readonly vm?: string;
  /**
   * The VMM's configuration of each VM (`ctx.vm.cpuModel`, `ctx.vm.onlineCpus`), as
   * WorkerInit `vms` gives it; checked like the worker checks it (a bad one throws here).
   * VMs without one get the default CPU model.
   */
  readonly vms?: WorkerInit['vms'];
}

/** A verifier engine for plugin tests; made by {@link pluginTestVerifier}. */
export class PluginTestVerifier {
  /** The engine itself (verifier-vm/verifier.ts). */
  readonly engine: Verifier;
  /** The default VM of requests sent without `vm`. */
  readonly vm: string;
  #nextId = 1;

  constructor(engine: Verifier, vm: string) {
    this.engine = engine;
    this.vm = vm;
  }

  /**
   * Sends one request and returns the verdict. `v`, `id` (increasing from 1) and `vm` are
   * filled in when absent. The engine checks the shape first, as the worker does: a
   * malformed request gets a denial `malformed request: ...`, not an exception.
   */
  send(request: RequestInput): Verdict {
    return this.sendRaw({ v: PROTOCOL_VERSION, id: this.#nextId++, vm: this.vm, ...request });
  }

  /** Sends any message as it is, without filling in anything (for shape and robustness tests). */
  sendRaw(message: unknown): Verdict {
    return this.engine.verify(message);
  }

  /** Sends a text-patch batch of `items`. */
  textPatch(items: readonly PatchItem[], vm?: string): Verdict {
    return this.send({ kind: 'text-patch', items, ...(vm === undefined ? {} : { vm }) });
  }

  /** The verifier's state of a VM (default: {@link PluginTestVerifier.vm}): verified modules, `pluginState`, ... */
  state(vm: string = this.vm): VmState {
    return this.engine.vmState(vm);
  }

  /** The plugins in the order they run. */
  plugins(): string[] {
    return this.engine.plugins().map((p) => p.name);
  }
}

function builtinsFor(choice: PluginTestOptions['builtins']): AnyPlugin[] {
  if (choice === undefined || choice === true) return [...BUILTIN_PLUGINS];
  if (choice === false) return [];
  const unknown = choice.filter((n) => !BUILTIN_PLUGINS.some((p) => p.name === n));
  if (unknown.length) throw new Error(`unknown built-in plugin(s): ${unknown.join(', ')} (built-ins: ${BUILTIN_PLUGINS.map((p) => p.name).join(', ')})`);
  return BUILTIN_PLUGINS.filter((p) => choice.includes(p.name));
}

function manifestFor(m: PluginTestOptions['manifest']): KernelManifest | undefined {
  if (m === null) return undefined;
  if (m === undefined) return indexManifest(syntheticManifestBody(), 'synthetic');
  return 'mcountSites' in m && m.mcountSites instanceof Set ? (m as KernelManifest) : indexManifest(m as ManifestBody, 'test');
}

/**
 * A verifier engine with the built-in plugins (unless `builtins` says otherwise) and then
 * `plugins`, over the synthetic kernel's manifest. Throws on a setup mistake (two plugins of
 * one name, an unknown built-in): that is a bug in the test, not a verdict.
 */
export function pluginTestVerifier(options: PluginTestOptions = {}): PluginTestVerifier {
  const manifest = manifestFor(options.manifest);
  const vms = checkVmConfigs(options.vms);
  if (!vms.ok) throw new TypeError(vms.error);
  const engine = new Verifier({
    vms: vms.value,
    keyring: options.keyring ?? Keyring.empty(),
    plugins: [...builtinsFor(options.builtins), ...((options.plugins ?? []) as readonly AnyPlugin[])],
    ...(manifest ? { manifest } : {}),
    ...(options.pluginConfig ? { pluginConfig: options.pluginConfig } : {}),
  });
  return new PluginTestVerifier(engine, options.vm ?? 'vm0');
}

/**
 * Imports a plugin module the way the verifier worker imports `pluginModules`: its default
 * export, a plugin or an array of plugins, each checked (name, description, known kinds,
 * decide). Rejects, naming the file and the problem, when one is malformed.
 */
export { loadPluginModule } from '../verifier-vm/verifier-setup.ts';
