/**
 * What the runtime keeps of a machine's host side to carry it through its lifecycle, and what
 * a migration hands over (machine/lifecycle/).
 */
import type { HypervisorKind } from '../../shared/hypervisor-kind.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import type { Vmm } from '../../hypervisor/vmm/vmm.ts';
import type { VmmPolicy } from '../../hypervisor/vmm/policy.ts';
import type { VerifierLink, VerifierLinkOptions } from '../../hypervisor/verifier-link/verifier-link.ts';
import type { WorkerInit } from '../../shared/worker-api.ts';
import type { Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';
import type { GuestKernel } from '../../guest/kernel/guest-kernel.ts';
import type { VmObserver } from '../../hypervisor/observe/vm-observer.ts';

/**
 * What the host side keeps to carry the machine through its lifecycle (reboot, kexec,
 * hibernation, migration): how its verifier was started, the host's kernel-vendor key, and
 * the boot kernel's files.
 */
export interface MachineHost {
  /** The verifier worker's configuration: keyring (with the VMM's per-VM key), boot manifest, plugins. */
  readonly verifierInit: WorkerInit;
  readonly linkOptions: Omit<VerifierLinkOptions, 'init'>;
  /** The host's kernel-vendor key (trusted by the keyring): signs manifests for kexec images given without one. */
  readonly vendor: Ed25519KeyPair;
  readonly vmlinuzPath: string;
  readonly systemMapPath: string;
  readonly policy?: VmmPolicy;
  /** The operator's VMM key, when one was given: VMs this host restores keep signing with it (default: a fresh key per VM). */
  readonly vmmKey?: Ed25519KeyPair;
  /** MAXPHYADDR of the machine's vCPUs, when it was given (MachineConfig.physBits): VMs this host restores or receives keep it. */
  readonly physBits?: number;
  /** The hypervisor of the machine (MachineConfig.hypervisor), when it is not KVM: VMs this host restores or receives run on it too. */
  readonly hypervisor?: HypervisorKind;
  /**
   * The machine's observer (`heki run --trace/--report/--record`), when it has one: a
   * migration's new VMM and verifier get it too, so one trace covers the whole run.
   */
  readonly observer?: VmObserver;
}

/** The destination VM a restore stands up (machine/lifecycle/migration.ts): the parts a machine goes on with after a migration. */
export interface MachineSwap {
  readonly vmm: Vmm;
  readonly link: VerifierLink;
  readonly image: KernelImage;
  readonly kernel: GuestKernel;
  readonly host: MachineHost;
}
