/**
 * What the benchmark's parts share: whether the real kernel fixtures are there, the kernel
 * image (loaded once), a verifier configuration with a manifest of that image, and the
 * progress reporter.
 */
import type { CpuModel } from '../shared/x86/cpu-model.ts';
import { cpus, freemem, loadavg, totalmem } from 'node:os';
import { NOP5, encodeCall32 } from '../shared/x86/patch-encodings.ts';
import { defaultFixtureDir, fixturePaths, fixturesAvailable, type FixturePaths } from '../shared/kernel-image/fixture-paths.ts';
import { loadKernelImage } from '../shared/kernel-image/load-kernel.ts';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import type { PatchItem } from '../shared/protocol.ts';
import { buildManifestBody, signManifest } from '../tools/manifest-builder.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair } from '../shared/crypto/ed25519.ts';
import type { KeyringData } from '../shared/keyring-data.ts';
import type { WorkerInit } from '../shared/worker-api.ts';
import type { Progress } from './progress.ts';

/** The machine the figures come from (the `machine` object of the JSON report). */
export interface MachineInfo {
  readonly cpus: number;
  readonly node: string;
  readonly cpuModel: string;
  readonly arch: string;
  readonly platform: string;
  readonly memoryGiB: number;
  /** 1, 5 and 15 minute load averages when the run started: other work on the machine skews the figures. */
  readonly loadavg: readonly number[];
}

/** The machine this process runs on. */
export function machineInfo(): MachineInfo {
  const c = cpus();
  return {
    cpus: c.length,
    node: process.version,
    cpuModel: c[0]?.model.trim() ?? 'unknown',
    arch: process.arch,
    platform: process.platform,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    loadavg: loadavg().map((l) => Math.round(l * 100) / 100),
  };
}

/** Free host memory in GiB (the guest-size scaling runs check it). */
export function freeGiB(): number {
  return freemem() / 2 ** 30;
}

/** Shared state of one benchmark run. */
export class BenchContext {
  readonly quick: boolean;
  readonly fixtureDir: string;
  readonly fixtures: FixturePaths;
  readonly haveFixtures: boolean;
  readonly progress: Progress;
  /** The CPU model of the machines the benchmark boots (undefined: the default). */
  readonly cpu: CpuModel | undefined;
  #image: Promise<KernelImage> | undefined;
  #init: Promise<WorkerInit> | undefined;

  constructor(options: { quick: boolean; progress: Progress; cpu?: CpuModel }) {
    this.quick = options.quick;
    this.cpu = options.cpu;
    this.fixtureDir = defaultFixtureDir();
    this.fixtures = fixturePaths(this.fixtureDir);
    this.haveFixtures = fixturesAvailable(this.fixtureDir);
    this.progress = options.progress;
  }

  /** `quick` or `full` iteration counts. */
  n(quick: number, full: number): number {
    return this.quick ? quick : full;
  }

  /** The real kernel image (rejects without fixtures). */
  image(): Promise<KernelImage> {
    this.#image ??= loadKernelImage({ vmlinuzPath: this.fixtures.vmlinuz, systemMapPath: this.fixtures.systemMap }).then((r) => {
      if (!r.ok) throw new Error(r.error.message);
      return r.value;
    });
    return this.#image;
  }

  /**
   * A verifier configuration: with the fixtures, a keyring with an ephemeral kernel-vendor key
   * and the signed manifest of the real image (as machine/machine.ts makes one); without, a
   * keyring only (patch items are then denied: "no kernel manifest loaded").
   */
  verifierInit(): Promise<WorkerInit> {
    this.#init ??= (async () => {
      const vendor = generateEd25519KeyPair();
      const keyring: KeyringData = {
        ed25519: [{ keyId: ed25519KeyIdHex(vendor.publicKey), role: 'kernel-vendor', publicKey: vendor.publicKey, source: 'benchmark vendor key' }],
        certificates: [],
        revoked: { ed25519KeyIds: [], x509Sha256: [] },
      };
      if (!this.haveFixtures) return { keyring };
      const body = buildManifestBody(await this.image(), { kernel: 'linux-6.1.0-56-amd64', vmlinuzSha256: '0'.repeat(64) });
      return { keyring, manifest: signManifest(body, vendor) };
    })();
    return this.#init;
  }

  /**
   * The live (`.text`, not `.init.text`) ftrace sites of the real kernel, and `ftrace_caller`.
   * Without fixtures, `count` made-up sites (the verifier denies them).
   */
  async ftraceSites(count?: number): Promise<{ sites: bigint[]; trampoline: bigint }> {
    if (!this.haveFixtures) {
      const n = count ?? 1024;
      return { sites: Array.from({ length: n }, (_, i) => 0xffff_ffff_8100_0000n + BigInt(i * 64)), trampoline: 0xffff_ffff_8107_6660n };
    }
    const img = await this.image();
    const trampoline = img.systemMap.address('ftrace_caller');
    if (trampoline === undefined) throw new Error('ftrace_caller is not in System.map');
    // .init.text is freed at the end of boot, and ftrace drops its records (ftrace_free_init_mem).
    const live = img.mcountSites.filter((s) => s.section !== '.init.text').map((s) => s.address);
    return { sites: count === undefined ? live : live.slice(0, count), trampoline };
  }
}

/** Items that turn ftrace on at `sites` (NOP5 -> call trampoline), as the guest asks. */
export function ftraceEnableItems(sites: readonly bigint[], trampoline: bigint): PatchItem[] {
  return sites.map((site) => ({
    kind: 'ftrace',
    site,
    oldBytes: Uint8Array.from(NOP5),
    newBytes: encodeCall32(site, trampoline),
    currentBytes: Uint8Array.from(NOP5),
  }));
}
