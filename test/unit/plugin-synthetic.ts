/**
 * A small synthetic kernel for the plugin tests (not a test file itself): the plugin-testing kit's
 * synthetic kernel with static calls and an .init.text jump label added, section
 * bytes whose hashes the manifest records, one verified module, and builders for requests and
 * contexts.
 */
import { DEFAULT_CPU_MODEL } from '../../shared/x86/cpu-models-builtin.ts';
import { createHash } from 'node:crypto';
import { PROTOCOL_VERSION, type PatchItem, type RequestOf, type SetMemoryRange } from '../../shared/protocol.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { indexManifest, type KernelManifest, type ManifestBody } from '../../verifier-vm/manifest.ts';
import { SYNTHETIC, syntheticManifestBody, syntheticSectionBytes } from '../../tools/plugin-testing.ts';
import type { PluginContext, VerifiedModule, VmState } from '../../verifier-vm/plugin-api.ts';

const h = (a: bigint): string => a.toString(16);
const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** Addresses of the synthetic kernel. */
export const K = {
  text: SYNTHETIC.text,
  textSize: SYNTHETIC.textSize,
  initText: SYNTHETIC.initText,
  initTextSize: SYNTHETIC.initTextSize,
  rodata: SYNTHETIC.rodata,
  rodataSize: SYNTHETIC.rodataSize,
  ftraceCaller: SYNTHETIC.ftraceCaller,
  ftraceRegsCaller: SYNTHETIC.ftraceRegsCaller,
  fentry: SYNTHETIC.fentry,
  /** Two .text ftrace sites and one in .init.text. */
  mcount: SYNTHETIC.mcountSites,
  initMcount: SYNTHETIC.initMcountSite,
  /** A 2-byte and a 5-byte jump entry in .text, and a 5-byte one in .init.text. */
  jump2: SYNTHETIC.jump2,
  jump5: SYNTHETIC.jump5,
  initJump5: { site: 0xffffffff83000100n, target: 0xffffffff83000200n },
  /** A plain function in .text, away from every patch site. */
  func: SYNTHETIC.printk,
} as const;

/**
 * The synthetic static calls: key A with two call sites, a tail-call site and a site in
 * .init.text; key B with one call site; their trampolines in .text; the function entry points.
 */
export const SC = {
  keyA: {
    name: 'sc_a',
    key: 0xffffffff82a00100n,
    trampoline: 0xffffffff81004000n,
    calls: [0xffffffff81000a00n, 0xffffffff81000b00n],
    tail: 0xffffffff81000c00n,
    init: 0xffffffff83000300n,
  },
  keyB: { name: 'sc_b', key: 0xffffffff82a00110n, trampoline: 0xffffffff81004008n, calls: [0xffffffff81000d00n] },
  /** A second plain function (K.func is the first). */
  func2: 0xffffffff81003000n,
  return0: 0xffffffff81005000n,
  returnThunk: 0xffffffff81005100n,
} as const;

/** Every synthetic kernel function entry point. */
export const SC_FUNCTIONS: readonly bigint[] = [
  K.text,
  K.ftraceCaller,
  K.ftraceRegsCaller,
  K.fentry,
  K.func,
  SC.func2,
  SC.keyA.trampoline,
  SC.keyB.trampoline,
  SC.return0,
  SC.returnThunk,
];

/** The bytes of a synthetic section: a repeating pattern seeded by the name. */
export const sectionBytes = syntheticSectionBytes;

/** The synthetic manifest body (hand-written, named "synthetic"). */
export function syntheticBody(): ManifestBody {
  // The plugin-testing kit's synthetic kernel, plus what only these tests need: a jump label
  // in .init.text and the static calls.
  const base = syntheticManifestBody();
  return {
    ...base,
    jumpEntries: [...base.jumpEntries, { site: h(K.initJump5.site), target: h(K.initJump5.target), key: h(0xffffffff82a00020n), len: 5 }],
    staticCalls: {
      sites: [
        ...SC.keyA.calls.map((a) => ({ site: h(a), key: h(SC.keyA.key), tail: false })),
        { site: h(SC.keyA.tail), key: h(SC.keyA.key), tail: true },
        { site: h(SC.keyA.init), key: h(SC.keyA.key), tail: false },
        ...SC.keyB.calls.map((a) => ({ site: h(a), key: h(SC.keyB.key), tail: false })),
      ],
      keys: [SC.keyA, SC.keyB].map((k) => ({ key: h(k.key), trampoline: h(k.trampoline), name: k.name })),
      functionBase: h(K.text),
      functions: SC_FUNCTIONS.map((a) => h(a - K.text)),
      return0: h(SC.return0),
      returnThunk: h(SC.returnThunk),
    },
  };
}

/** The synthetic manifest, indexed (no signature: indexManifest trusts its caller). */
export function syntheticManifest(): KernelManifest {
  return indexManifest(syntheticBody(), '0123456789abcdef');
}

/** Addresses of the synthetic module. */
export const MOD = {
  name: 'synth_mod',
  text: 0xffffffffc0000000n,
  textSize: 0x2000,
  mcount: 0xffffffffc0000010n,
  jump2: { site: 0xffffffffc0000100n, target: 0xffffffffc0000120n },
  data: 0xffffffffc0004000n,
} as const;

/** The content of page `k` of the synthetic module's text. */
export function modulePage(k: number): Uint8Array {
  return Uint8Array.from({ length: 4096 }, (_, i) => (i * 13 + k * 101 + 1) & 0xff);
}

/** SHA-256 hex of bytes. */
export const sha256 = sha;

/** A verified module as module-end-state would record it. */
export function syntheticModule(name: string = MOD.name): VerifiedModule {
  return {
    name,
    exports: new Map([['synth_fn', MOD.text + 0x40n]]),
    mcountSites: new Set([MOD.mcount]),
    jumpEntries: new Map([[MOD.jump2.site, { target: MOD.jump2.target, len: 2 as const }]]),
    textRanges: [{ start: MOD.text, end: MOD.text + BigInt(MOD.textSize) }],
    ranges: [
      { start: MOD.text, end: MOD.text + BigInt(MOD.textSize), permissions: 0b101 },
      { start: MOD.data, end: MOD.data + 0x1000n, permissions: 0b011 },
    ],
    textPageHashes: new Map([
      [MOD.text, sha(modulePage(0))],
      [MOD.text + 0x1000n, sha(modulePage(1))],
    ]),
    functions: new Set([MOD.text + 0x40n]),
  };
}

/** A fresh VM state. */
export function freshVm(vm = 'vm0'): VmState {
  return {
    vm,
    modules: new Map(),
    codeImages: new Map(),
    bootVerified: false,
    pluginState: new Map(),
    cpuModel: DEFAULT_CPU_MODEL,
    onlineCpus: DEFAULT_CPU_MODEL.presentCpus,
  };
}

/** A plugin context over `vm` (fresh unless given). */
export function context(
  opts: { manifest?: KernelManifest | undefined; vm?: VmState; config?: Record<string, unknown>; keyring?: Keyring } = {},
): PluginContext {
  return {
    manifest: 'manifest' in opts ? opts.manifest : syntheticManifest(),
    keyring: opts.keyring ?? Keyring.empty(),
    vm: opts.vm ?? freshVm(),
    facts: new Map(),
    config: opts.config ?? {},
  };
}

let nextId = 1;

/** A text-patch request. */
export function patchRequest(items: PatchItem[], vm = 'vm0'): RequestOf<'text-patch'> {
  return { v: PROTOCOL_VERSION, id: nextId++, vm, kind: 'text-patch', items };
}

/** A patch item whose memory holds `old`. */
export function item(
  kind: PatchItem['kind'],
  site: bigint,
  old: Uint8Array | number[],
  neu: Uint8Array | number[],
  current?: Uint8Array | number[],
): PatchItem {
  const o = Uint8Array.from(old);
  return { kind, site, oldBytes: o, newBytes: Uint8Array.from(neu), currentBytes: current === undefined ? Uint8Array.from(o) : Uint8Array.from(current) };
}

/** A set-memory request. */
export function setMemoryRequest(ranges: SetMemoryRange[], vm = 'vm0'): RequestOf<'set-memory'> {
  return { v: PROTOCOL_VERSION, id: nextId++, vm, kind: 'set-memory', ranges };
}

/** A keyring from Ed25519 entries. */
export function keyringOf(data: {
  ed25519?: Array<{ keyId: string; role: 'kernel-vendor' | 'module-signing'; publicKey: Uint8Array }>;
  revoked?: string[];
}): Keyring {
  const r = Keyring.fromData({ ed25519: data.ed25519 ?? [], certificates: [], revoked: { ed25519KeyIds: data.revoked ?? [], x509Sha256: [] } });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}
