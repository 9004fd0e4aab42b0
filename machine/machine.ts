/**
 * Builds a whole simulated machine: the real kernel image, the keyring from host files, a
 * kernel manifest built from the image and signed by an ephemeral kernel-vendor key (standing
 * in for the vendor's build), the VM's identity and the VMM's per-VM key (its public key a
 * `vmm` key of the keyring, so the verifier can check the VM's hibernation images and
 * snapshots), the verifier VM in its worker, the VMM with the verifier attached and the
 * kernel to boot, and the kernel's segments loaded into guest memory. The guest boots on the
 * first `boot()` step.
 *
 * This is the composition root: the only place where the host side (hypervisor/,
 * verifier-vm/) and the guest kernel (guest/) meet, as a VMM process would start a guest.
 */
import { DEFAULT_HYPERVISOR, parseHypervisorKind, type HypervisorKind } from '../shared/hypervisor-kind.ts';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { type Result, err, ok } from '../shared/result.ts';
import { loadKernelImage } from '../shared/kernel-image/load-kernel.ts';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import { fixturePaths } from '../shared/kernel-image/fixture-paths.ts';
import { keyringDataFromFiles } from '../tools/key-files.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair, type Ed25519KeyPair } from '../shared/crypto/ed25519.ts';
import { bzImageKernelName, signManifest } from '../tools/manifest-builder.ts';
import { manifestBodyFor } from './manifest-cache.ts';
import { AuditLog } from '../hypervisor/audit/audit-log.ts';
import { VerifierLink } from '../hypervisor/verifier-link/verifier-link.ts';
import { Vmm, newVmIdentity } from '../hypervisor/vmm/vmm.ts';
import { resolveCpuModel, type CpuModelSpec } from '../hypervisor/vmm/cpu-models.ts';
import { physBitsError } from '../hypervisor/vcpu/mmu.ts';
import { restoreVm, snapshotVm, type RestoreError } from './lifecycle/migration.ts';
import type { VmmPolicy } from '../hypervisor/vmm/policy.ts';
import { notify, type VmObserver } from '../hypervisor/observe/vm-observer.ts';
import { observePort } from '../hypervisor/observe/observed-port.ts';
import type { WorkerInit } from '../shared/worker-api.ts';
import type { MachineApi } from './machine-api.ts';
import { SimulatedMachine } from './simulated-machine.ts';
import { verifierTimeoutMs } from './verifier-timeout.ts';
import { MachineBase } from './machine-fork.ts';

export { MachineBase, forkMachine } from './machine-fork.ts';
export { machineDigest, type MachineDigest } from './machine-digest.ts';

/** Guest RAM by default: 1 GiB (sparse: only touched pages cost host memory). */
export const DEFAULT_MEMORY = 1n << 30n;

/**
 * The VM's disk by default: 512 MiB of 512-byte sectors (sparse: only written sectors cost
 * host memory), room for a hibernation image of the booted real kernel at its resume area.
 */
export const DEFAULT_DISK_SECTORS = 1 << 20;

/** The VM's name in its verifier requests and audit records. */
export const VM_NAME = 'vm0';

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
  /**
   * The CPU model (hypervisor/vmm/cpu-models.ts): a named model (`qemu64-up`,
   * `skylake-smp2`, `epyc-smp2`), a reference folder's path, or a model object. Default:
   * `skylake-smp2`. A bad one is an `input` error naming the problem.
   */
  readonly cpu?: CpuModelSpec;
  /**
   * The hypervisor (default `kvm`): `hyperv` runs the core's Hyper-V personality (VSM with
   * the LVBS VTL-call ABI, hypervisor/hyperv/); the guest finds out from CPUID 0x40000000.
   */
  readonly hypervisor?: HypervisorKind;
  /** The VMM's reactions to exits. */
  readonly policy?: VmmPolicy;
  /** Where the audit log goes (default: memory only). */
  readonly auditPath?: string;
  /**
   * The verifier's no-progress bound in ms: a request on which the verifier reports no
   * progress for that long is denied "verifier unavailable" (default: HEKI_VERIFIER_TIMEOUT_MS,
   * else the link's 2 s; machine/verifier-timeout.ts). One request is cut at 120 s regardless.
   */
  readonly verifierTimeoutMs?: number;
  /** Allow fault injection into the verifier worker (tests, benchmark). */
  readonly faultInjection?: boolean;
  /** Extra verifier plugin modules (absolute paths) and per-plugin configuration. */
  readonly pluginModules?: readonly string[];
  readonly pluginConfig?: Readonly<Record<string, Readonly<Record<string, unknown>>>>;
  /** Boot progress lines. */
  readonly log?: (line: string) => void;
  /**
   * Watches the host side (hypervisor/observe/vm-observer.ts): hypercalls, exits, EPT
   * updates, verifier requests and verdicts. `heki run --trace/--report/--record` pass one.
   */
  readonly observer?: VmObserver;
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
   * MAXPHYADDR of the vCPUs, 32 to 52 (default 40, the reference CPUs' `x86_phys_bits`):
   * bits from it to 51 are reserved in the guest's page-table entries (docs/mmu.md). A CPU
   * model gives its `physBits` here. Kept across reboot, kexec and migration.
   */
  readonly physBits?: number;
  /**
   * Keep a warm spare verifier worker for failover (default true). Without one, a verifier
   * that dies is replaced by a worker started on demand (slower failover, one thread less).
   */
  readonly verifierSpare?: boolean;
  /**
   * The VMM's per-VM key, which signs the VM's hibernation images and snapshots (default: a
   * fresh one). Its public key joins the keyring as a `vmm` key.
   */
  readonly vmmKey?: Ed25519KeyPair;
}

/** Why a machine could not be built: bad input (a file) or a failure to start. */
export interface MachineError {
  readonly kind: 'input' | 'start';
  readonly message: string;
}

/**
 * The kernel files a machine boots (the fixture's unless named) and their image, loaded
 * unless given: bad files are `input` errors.
 */
async function hostKernel(config: {
  readonly vmlinuz?: string;
  readonly systemMap?: string;
  readonly image?: KernelImage;
}): Promise<Result<{ vmlinuzPath: string; systemMapPath: string; image: KernelImage }, { readonly kind: 'input'; readonly message: string }>> {
  const fx = fixturePaths();
  const vmlinuzPath = config.vmlinuz ?? fx.vmlinuz;
  const systemMapPath = config.systemMap ?? fx.systemMap;
  const image = config.image ? ok(config.image) : await loadKernelImage({ vmlinuzPath, systemMapPath });
  if (!image.ok) return err({ kind: 'input', message: image.error.message });
  return ok({ vmlinuzPath, systemMapPath, image: image.value });
}

/** Builds the machine, or says why not. */
export async function createMachineDetailed(config: MachineConfig): Promise<Result<SimulatedMachine, MachineError>> {
  if (config.kernel === 'synthetic') {
    return err({ kind: 'input', message: "kernel: synthetic is for the core's unit tests; scenarios run on kernel: real (the Debian 6.1 image)" });
  }
  const timeoutMs = verifierTimeoutMs(config.verifierTimeoutMs);
  if (!timeoutMs.ok) return err({ kind: 'input', message: timeoutMs.error });
  const cpu = resolveCpuModel(config.cpu);
  if (!cpu.ok) return err({ kind: 'input', message: cpu.error });
  const hypervisor = parseHypervisorKind(config.hypervisor ?? DEFAULT_HYPERVISOR);
  if (!hypervisor.ok) return err({ kind: 'input', message: hypervisor.error });
  const badPhysBits = config.physBits === undefined ? undefined : physBitsError(config.physBits);
  if (badPhysBits) return err({ kind: 'input', message: badPhysBits });
  const kernel = await hostKernel(config);
  if (!kernel.ok) return kernel;
  const { vmlinuzPath, systemMapPath, image } = kernel.value;
  const keys = keyringDataFromFiles({ pubkeys: [...config.keys.pubkeys], certs: [...config.keys.certs], revoked: [...config.keys.revoked] });
  if (!keys.ok) return err({ kind: 'input', message: keys.error });

  // The vendor's manifest: built from the image the VMM is about to boot, signed by a key
  // that only the verifier's keyring trusts. The code signer stands in for a BPF signing service.
  const vendor = generateEd25519KeyPair();
  const codeSigner = generateEd25519KeyPair();
  const vmlinuzBytes = new Uint8Array(readFileSync(vmlinuzPath));
  const kernelName = bzImageKernelName(vmlinuzBytes);
  const body = await manifestBodyFor(image, {
    kernel: kernelName.ok ? kernelName.value : 'unknown',
    vmlinuzSha256: image.source?.vmlinuzSha256 ?? createHash('sha256').update(vmlinuzBytes).digest('hex'),
  });
  const manifest = signManifest(body, vendor);
  const identity = config.vmmKey ? { ...newVmIdentity(), key: config.vmmKey } : newVmIdentity();
  const keyring = {
    ...keys.value,
    ed25519: [
      ...keys.value.ed25519,
      { keyId: ed25519KeyIdHex(vendor.publicKey), role: 'kernel-vendor' as const, publicKey: vendor.publicKey, source: 'ephemeral kernel vendor key' },
      { keyId: ed25519KeyIdHex(codeSigner.publicKey), role: 'module-signing' as const, publicKey: codeSigner.publicKey, source: 'ephemeral code signing key' },
      { keyId: ed25519KeyIdHex(identity.key.publicKey), role: 'vmm' as const, publicKey: identity.key.publicKey, source: `the VMM's key for ${VM_NAME}` },
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
  const init: WorkerInit = {
    keyring,
    manifest,
    // TRUST: the verifier learns the CPU model from the VMM, here, never from the guest.
    vms: { [VM_NAME]: { cpuModel: cpu.value } },
    ...(config.faultInjection ? { faultInjection: true } : {}),
    ...(config.pluginModules ? { pluginModules: config.pluginModules } : {}),
    ...(config.pluginConfig ? { pluginConfig: config.pluginConfig } : {}),
  };
  const linkOptions = {
    ...(timeoutMs.value !== undefined ? { timeoutMs: timeoutMs.value } : {}),
    ...(config.verifierSpare === false ? { spare: false } : {}),
  };
  let link: VerifierLink;
  try {
    link = await VerifierLink.start({ init, ...linkOptions });
  } catch (e) {
    return err({ kind: 'start', message: e instanceof Error ? e.message : String(e) });
  }
  const observer = config.observer;
  if (observer?.verifierStarted) {
    const time = performance.now();
    notify(() => observer.verifierStarted!({ vm: VM_NAME, init, time }));
  }
  const memoryBytes = config.memoryBytes ?? DEFAULT_MEMORY;
  const vmm = new Vmm({
    memoryBytes,
    name: VM_NAME,
    identity,
    cpu: cpu.value,
    hypervisor: hypervisor.value,
    disk: { sectors: DEFAULT_DISK_SECTORS },
    ...(config.policy ? { policy: config.policy } : {}),
    ...(config.protectedMemory ? { protectedMemory: true } : {}),
    ...(config.physBits !== undefined ? { physBits: config.physBits } : {}),
    ...(observer ? { observer } : {}),
  });
  const regions = body.sections.map((s) => ({ name: s.name, vaddr: BigInt(`0x${s.vaddr}`), paddr: BigInt(`0x${s.paddr}`), size: s.size }));
  const port = observer ? observePort(link, observer, { before: () => vmm.core.events?.flushEpt() }) : link;
  vmm.core.attachVerifier({ port, vm: VM_NAME, audit, kernelRegions: regions });
  vmm.setBootKernel({ elf: image.elf, manifest, regions, name: body.kernel });
  const loaded = vmm.loadKernel();
  if (!loaded.ok) {
    await link.dispose();
    return err({ kind: 'start', message: loaded.error });
  }
  return ok(
    new SimulatedMachine({
      vmm,
      link,
      audit,
      image,
      memoryBytes,
      codeSigner,
      ...(config.log ? { log: config.log } : {}),
      host: {
        verifierInit: init,
        linkOptions,
        vendor,
        vmlinuzPath,
        systemMapPath,
        ...(config.policy ? { policy: config.policy } : {}),
        ...(config.vmmKey ? { vmmKey: config.vmmKey } : {}),
        ...(config.physBits !== undefined ? { physBits: config.physBits } : {}),
        ...(hypervisor.value !== 'kvm' ? { hypervisor: hypervisor.value } : {}),
        ...(observer ? { observer } : {}),
      },
    }),
  );
}

/**
 * A migration snapshot of `machine` (machine/lifecycle/migration.ts), signed by its VMM's
 * per-VM key; the machine must be running a kernel and idle.
 */
export async function snapshotMachine(machine: SimulatedMachine): Promise<Result<Uint8Array, string>> {
  const k = machine.kernel;
  const host = machine.host;
  if (!k) return err('the machine runs no kernel (it is not booted, hibernated or stopped): nothing to snapshot');
  if (!host) return err('the machine was built without its host side');
  return snapshotVm(machine.vmm, k, host, machine.audit);
}

/** How to restore a snapshot into a fresh machine. */
export interface RestoreMachineConfig {
  /** The source VMM's public key the operator trusts. */
  readonly trust: Uint8Array;
  /** The kernel files (default: the fixture's); the guest's image must be the snapshot's kernel. */
  readonly vmlinuz?: string;
  readonly systemMap?: string;
  /** The kernel image already loaded from them. */
  readonly image?: KernelImage;
  /** Where the new machine's audit log goes (default: memory only). */
  readonly auditPath?: string;
  /** Allow fault injection into the new verifier (the attack catalogue's verifier attacks). */
  readonly faultInjection?: boolean;
  readonly verifierSpare?: boolean;
  readonly policy?: VmmPolicy;
  /** MAXPHYADDR of the new machine's vCPUs (MachineConfig.physBits; default 40). */
  readonly physBits?: number;
  /** The new machine's hypervisor (MachineConfig.hypervisor; default kvm): the source's. */
  readonly hypervisor?: HypervisorKind;
}

/** Why a snapshot was not restored: the image's checks, the new verifier, or the host's files. */
export type RestoreMachineError = RestoreError | { readonly kind: 'input'; readonly message: string };

/**
 * Restores a migration snapshot into a fresh machine (a new VMM and verifier) whose guest
 * kernel runs on where the source's stopped. Every refusal names the check that failed.
 */
export async function restoreMachine(bytes: Uint8Array, config: RestoreMachineConfig): Promise<Result<SimulatedMachine, RestoreMachineError>> {
  const timeoutMs = verifierTimeoutMs(undefined);
  if (!timeoutMs.ok) return err({ kind: 'input', message: timeoutMs.error });
  const badPhysBits = config.physBits === undefined ? undefined : physBitsError(config.physBits);
  if (badPhysBits) return err({ kind: 'input', message: badPhysBits });
  const kernel = await hostKernel(config);
  if (!kernel.ok) return kernel;
  const { vmlinuzPath, systemMapPath, image } = kernel.value;
  let audit: AuditLog | undefined;
  if (config.auditPath) {
    const a = AuditLog.open({ path: config.auditPath });
    if (!a.ok) return err({ kind: 'input', message: a.error });
    audit = a.value;
  }
  const r = await restoreVm(bytes, {
    trust: config.trust,
    image,
    host: {
      vmlinuzPath,
      systemMapPath,
      linkOptions: { ...(config.verifierSpare === false ? { spare: false } : {}), ...(timeoutMs.value !== undefined ? { timeoutMs: timeoutMs.value } : {}) },
      ...(config.policy ? { policy: config.policy } : {}),
      ...(config.physBits !== undefined ? { physBits: config.physBits } : {}),
      ...(config.hypervisor !== undefined ? { hypervisor: config.hypervisor } : {}),
    },
    ...(audit ? { audit } : {}),
    ...(config.faultInjection !== undefined ? { faultInjection: config.faultInjection } : {}),
  });
  if (!r.ok) {
    audit?.close();
    return r;
  }
  const v = r.value;
  return ok(
    new SimulatedMachine({
      vmm: v.vmm,
      link: v.link,
      audit: v.audit,
      image: v.image,
      memoryBytes: v.memoryBytes,
      codeSigner: generateEd25519KeyPair(),
      host: v.host,
      kernel: v.kernel,
    }),
  );
}

/**
 * Builds a machine from `config`, boots it, and keeps it as the base of forks
 * (machine/machine-fork.ts, docs/fork.md): `(await base.fork())` is a new machine in the
 * booted state, as if it had booted itself, in milliseconds instead of a boot. The base
 * signs with `config.vmmKey` or a key made for it, which every fork shares; `warm` verifier
 * workers are kept started ahead (default 1). A boot that is not allowed is a `start` error
 * with the boot's reason.
 */
export async function bootBase(config: MachineConfig, options: { readonly warm?: number } = {}): Promise<Result<MachineBase, MachineError>> {
  const built = await createMachineDetailed({ ...config, vmmKey: config.vmmKey ?? generateEd25519KeyPair() });
  if (!built.ok) return built;
  const m = built.value;
  const b = await m.boot();
  if (b.outcome !== 'allowed') {
    const why = m.deniedSince(0);
    await m.dispose();
    return err({ kind: 'start', message: `boot: ${b.reason}${why.length > 0 ? `; verifier: ${why.join(' | ')}` : ''}` });
  }
  return ok(new MachineBase(m, options));
}

/** Builds the machine (the signature `heki run` uses). */
export async function createMachine(config: MachineConfig): Promise<Result<MachineApi, string>> {
  const m = await createMachineDetailed(config);
  return m.ok ? ok(m.value) : err(m.error.message);
}
