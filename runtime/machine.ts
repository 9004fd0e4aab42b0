/**
 * Builds a whole simulated machine: the real kernel image, the keyring from host files, a
 * kernel manifest built from the image and signed by an ephemeral kernel-vendor key (standing
 * in for the vendor's build), the verifier VM in its worker, the VMM with the verifier
 * attached, and the kernel's segments loaded into guest memory. The guest boots on the
 * first `boot()` step.
 *
 * This is the composition root: the only place where the host side (hypervisor/,
 * verifier-vm/) and the guest kernel (guest/) meet, as a VMM process would start a guest.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Result, err, ok } from '../shared/result.ts';
import { loadKernelImage } from '../shared/kernel-image/load-kernel.ts';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import { fixturePaths } from '../shared/kernel-image/fixture-paths.ts';
import { keyringDataFromFiles } from '../verifier-vm/key-files.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair } from '../verifier-vm/signature/ed25519.ts';
import { bzImageKernelName, buildManifestBody, signManifest } from '../verifier-vm/manifest-builder.ts';
import { AuditLog } from '../verifier-vm/audit-log.ts';
import { VerifierLink } from '../hypervisor/verifier-link/verifier-link.ts';
import { Vmm } from '../hypervisor/vmm/vmm.ts';
import type { VmmPolicy } from '../hypervisor/vmm/policy.ts';
import { loadKernelSegments } from '../hypervisor/vmm/kernel-loader.ts';
import type { MachineApi } from './machine-api.ts';
import { SimulatedMachine } from './simulated-machine.ts';

/** Guest RAM by default: 1 GiB (sparse: only touched pages cost host memory). */
export const DEFAULT_MEMORY = 1n << 30n;

/** How to build a machine. */
export interface MachineConfig {
  readonly kernel: 'real' | 'synthetic';
  /** Absolute path; default: the fixture's vmlinuz. */
  readonly vmlinuz?: string;
  /** Absolute path; default: the fixture's System.map. */
  readonly systemMap?: string;
  /** Host key files for the verifier (absolute paths). */
  readonly keys: { readonly pubkeys: readonly string[]; readonly certs: readonly string[]; readonly revoked: readonly string[] };
  /** Guest RAM in bytes (default 1 GiB). */
  readonly memoryBytes?: bigint;
  /** The VMM's reactions to exits. */
  readonly policy?: VmmPolicy;
  /** Where the audit log goes (default: memory only). */
  readonly auditPath?: string;
  /** Verifier request timeout in ms. */
  readonly verifierTimeoutMs?: number;
  /** Allow fault injection into the verifier worker (tests, benchmark). */
  readonly faultInjection?: boolean;
  /** Extra verifier plugin modules (absolute paths) and per-plugin configuration. */
  readonly pluginModules?: readonly string[];
  readonly pluginConfig?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Boot progress lines. */
  readonly log?: (line: string) => void;
  /**
   * The kernel image already loaded from `vmlinuz` and `systemMap` (default: load it). A
   * KernelImage is never written to, so machines may share one (`heki attacks` does).
   */
  readonly image?: KernelImage;
  /**
   * Protected-memory mode (default false): guest memory is private, invisible to the VMM's
   * copy paths and device DMA, except what the guest shares with KVM_HC_MAP_GPA_RANGE.
   */
  readonly protectedMemory?: boolean;
  /**
   * Keep a warm spare verifier worker for failover (default true). Without one, a verifier
   * that dies is replaced by a worker started on demand (slower failover, one thread less).
   */
  readonly verifierSpare?: boolean;
}

/** Why a machine could not be built: bad input (a file) or a failure to start. */
export interface MachineError {
  readonly kind: 'input' | 'start';
  readonly message: string;
}

/** Builds the machine, or says why not. */
export async function createMachineDetailed(config: MachineConfig): Promise<Result<SimulatedMachine, MachineError>> {
  if (config.kernel === 'synthetic') {
    return err({ kind: 'input', message: "kernel: synthetic is for the core's unit tests; scenarios run on kernel: real (the Debian 6.1 image)" });
  }
  const fx = fixturePaths();
  const vmlinuzPath = config.vmlinuz ?? fx.vmlinuz;
  const systemMapPath = config.systemMap ?? fx.systemMap;
  const image = config.image ? ok(config.image) : await loadKernelImage({ vmlinuzPath, systemMapPath });
  if (!image.ok) return err({ kind: 'input', message: image.error.message });
  const keys = keyringDataFromFiles({ pubkeys: [...config.keys.pubkeys], certs: [...config.keys.certs], revoked: [...config.keys.revoked] });
  if (!keys.ok) return err({ kind: 'input', message: keys.error });

  // The vendor's manifest: built from the image the VMM is about to boot, signed by a key
  // that only the verifier's keyring trusts. The code signer stands in for a BPF signing service.
  const vendor = generateEd25519KeyPair();
  const codeSigner = generateEd25519KeyPair();
  const vmlinuzBytes = new Uint8Array(readFileSync(vmlinuzPath));
  const kernelName = bzImageKernelName(vmlinuzBytes);
  const body = buildManifestBody(image.value, {
    kernel: kernelName.ok ? kernelName.value : 'unknown',
    vmlinuzSha256: createHash('sha256').update(vmlinuzBytes).digest('hex'),
  });
  const manifest = signManifest(body, vendor);
  const keyring = {
    ...keys.value,
    ed25519: [
      ...keys.value.ed25519,
      { keyId: ed25519KeyIdHex(vendor.publicKey), role: 'kernel-vendor' as const, publicKey: vendor.publicKey, source: 'ephemeral kernel vendor key' },
      { keyId: ed25519KeyIdHex(codeSigner.publicKey), role: 'module-signing' as const, publicKey: codeSigner.publicKey, source: 'ephemeral code signing key' },
    ],
  };
  let audit: AuditLog;
  if (config.auditPath) {
    const a = AuditLog.open({ path: config.auditPath });
    if (!a.ok) return err({ kind: 'input', message: a.error });
    audit = a.value;
  } else {
    audit = AuditLog.inMemory();
  }
  let link: VerifierLink;
  try {
    link = await VerifierLink.start({
      init: {
        keyring,
        manifest,
        ...(config.faultInjection ? { faultInjection: true } : {}),
        ...(config.pluginModules ? { pluginModules: config.pluginModules } : {}),
        ...(config.pluginConfig ? { pluginConfig: config.pluginConfig } : {}),
      },
      ...(config.verifierTimeoutMs ? { timeoutMs: config.verifierTimeoutMs } : {}),
      ...(config.verifierSpare === false ? { spare: false } : {}),
    });
  } catch (e) {
    return err({ kind: 'start', message: e instanceof Error ? e.message : String(e) });
  }
  const memoryBytes = config.memoryBytes ?? DEFAULT_MEMORY;
  const vmm = new Vmm({ memoryBytes, ...(config.policy ? { policy: config.policy } : {}), ...(config.protectedMemory ? { protectedMemory: true } : {}) });
  vmm.core.attachVerifier({
    port: link,
    vm: 'vm0',
    audit,
    kernelRegions: body.sections.map((s) => ({ name: s.name, vaddr: BigInt(`0x${s.vaddr}`), paddr: BigInt(`0x${s.paddr}`), size: s.size })),
  });
  const loaded = loadKernelSegments(vmm.core.memory, image.value.elf);
  if (!loaded.ok) {
    await link.dispose();
    return err({ kind: 'start', message: loaded.error });
  }
  return ok(new SimulatedMachine({ vmm, link, audit, image: image.value, memoryBytes, codeSigner, ...(config.log ? { log: config.log } : {}) }));
}

/** Builds the machine (the signature `heki run` uses). */
export async function createMachine(config: MachineConfig): Promise<Result<MachineApi, string>> {
  const m = await createMachineDetailed(config);
  return m.ok ? ok(m.value) : err(m.error.message);
}
