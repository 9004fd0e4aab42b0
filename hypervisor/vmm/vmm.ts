/**
 * The userspace VMM of one VM: it creates the core, owns the policy and the event log,
 * receives every exit, and decides what is pinned beyond what the guest asked for.
 *
 * Pinning under VMM control (Sean Christopherson's review of Heki v3): when the guest's
 * lock request reaches the VMM as a `heki-configure` exit and the VMM accepts it, the VMM
 * also pins the platform state the guest cannot pin for itself: writes to the syscall and
 * sysenter MSRs and EFER exit to the VMM through an MSR filter, and lidt/lgdt exit through the
 * descriptor-table filter. The default policy refuses those writes with #GP.
 *
 * Host-side protections: the VMM touches guest memory only through {@link HostMemory}'s named
 * copy paths, and its emulated devices only through a DMA port that obeys the EPT
 * (hypervisor/vmm/devices/dma-port.ts). With `protectedMemory`, guest memory is private to the
 * guest except what it shares with KVM_HC_MAP_GPA_RANGE. Refusals are logged and audited.
 */
import type { HypervisorKind } from '../../shared/hypervisor-kind.ts';
import { MSR } from '../../shared/x86/cpu.ts';
import { HEKI_CONFIGURE, HEKI_DENIAL } from '../../shared/exit-reasons.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import { VmCore } from '../core/vm-core.ts';
import { denyWritesFilter } from '../core/msr-filter.ts';
import type { ExitOf, ExitSink, KexecSlot, Reaction, VerifiedKexecImage, VmExit } from '../exits/exit.ts';
import { VmmEventLog } from './event-log.ts';
import { handleExit, type ExitHandlerContext } from './exit-handlers.ts';
import type { VmmPolicy } from './policy.ts';
import { AuditLog } from '../audit/audit-log.ts';
import { HostMemory } from './host-memory.ts';
import { HostRefusalRecorder } from './host-refusals.ts';
import { DmaPort } from './devices/dma-port.ts';
import { VirtioBlk, type VirtioBlkOptions } from './devices/virtio-blk.ts';
import { loadKernelSegments } from './kernel-loader.ts';
import type { BootKernel } from './lifecycle/boot-kernel.ts';
import { type Result, err } from '../../shared/result.ts';
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import { DEFAULT_CPU_MODEL } from '../../shared/x86/cpu-models-builtin.ts';
import { VmCpus, readGuestVirtual } from './vm-cpus.ts';
import type { VmImageSigner } from '../../shared/vm-image.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair, type Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { vmImageSigner } from '../../shared/crypto/vm-image-signature.ts';
import { randomBytes } from 'node:crypto';
import type { VmObserver } from '../observe/vm-observer.ts';

/** MSRs the VMM pins when the guest locks: the syscall entry points, sysenter, EFER. */
export const PINNED_MSRS: readonly number[] = [
  MSR.LSTAR,
  MSR.STAR,
  MSR.CSTAR,
  MSR.SYSCALL_MASK,
  MSR.IA32_SYSENTER_CS,
  MSR.IA32_SYSENTER_ESP,
  MSR.IA32_SYSENTER_EIP,
  MSR.EFER,
];

/** How to start a VM. */
export interface VmmConfig {
  /** Bytes of guest RAM (a multiple of 4 KiB). */
  readonly memoryBytes: bigint;
  /**
   * The CPU model the VM boots with (default: shared/x86/cpu-models-builtin.ts's default).
   * The VMM owns it: the vCPUs answer CPUID from it, the verifier is configured with it.
   */
  readonly cpu?: CpuModel;
  /**
   * vCPUs created (default: the model's possible CPUs; the model's present ones are online
   * at boot, the rest come online with {@link Vmm.cpuOnline}).
   */
  readonly vcpus?: number;
  /** Reactions to exits; silent reasons get DEFAULT_POLICY. */
  readonly policy?: VmmPolicy;
  /** Pin MSRs and descriptor tables when the guest's CR lock is accepted (default true). */
  readonly pinPlatformOnLock?: boolean;
  /** KVM_CAP_HEKI_CONFIGURE / KVM_CAP_HEKI_DENIAL masks (default: every reason). */
  readonly hekiExits?: { readonly configure: number; readonly denial: number };
  /**
   * Protected-memory mode (default false): guest memory is private, invisible to the VMM,
   * except ranges the guest shares with KVM_HC_MAP_GPA_RANGE.
   */
  readonly protectedMemory?: boolean;
  /**
   * MAXPHYADDR of the vCPUs, 32 to 52: overrides the CPU model's `physBits` (the model then
   * carries it, so CPUID and the page walk agree); default the model's (40 for the shipped ones).
   */
  readonly physBits?: number;
  /** The hypervisor the VM runs on (default `kvm`; `hyperv`: VSM with the LVBS VTL-call ABI). */
  readonly hypervisor?: HypervisorKind;
  /** The emulated disk (default 2048 sectors, 1 MiB). */
  readonly disk?: VirtioBlkOptions;
  /** The VM's name in audit records written before a verifier is attached (default `vm0`). */
  readonly name?: string;
  /**
   * The VM's identity and the VMM's per-VM key, which signs its state images (hibernation,
   * migration); its public key must be a `vmm` key of the verifier's keyring. Default: a
   * fresh identity and key (then no verifier can check this VM's images).
   */
  readonly identity?: VmIdentity;
  /**
   * Watches the VM (hypervisor/observe/vm-observer.ts): its hypercalls, exits, EPT updates
   * and resets. The verifier's requests are watched by the port the VMM attaches
   * (hypervisor/observe/observed-port.ts).
   */
  readonly observer?: VmObserver;
}

/**
 * The VM's configuration as data: everything of {@link VmmConfig} but the host-side objects
 * (reactions, identity, observer), which the host supplies again wherever the VM runs. A
 * migration carries it whole (machine/lifecycle/migration.ts); a field added to VmmConfig
 * travels only once its field is in the platform section's schema
 * (machine/lifecycle/platform-section.ts): a section's fields are declared, and an unknown one
 * is refused on read.
 */
export type VmSettings = Omit<VmmConfig, 'policy' | 'identity' | 'observer'>;

/** Who a VM is, for its state images: kept across hibernation and migration. */
export interface VmIdentity {
  /** 32 hex digits, drawn when the VM was first created. */
  readonly vmId: string;
  /** The VMM's Ed25519 key for this VM. */
  readonly key: Ed25519KeyPair;
}

/** A fresh identity: a random VM id and a new key. */
export function newVmIdentity(): VmIdentity {
  return { vmId: randomBytes(16).toString('hex'), key: generateEd25519KeyPair() };
}

/** The VMM's emulated devices. */
export interface VmmDevices {
  /** The virtio-blk-like disk; `notify(descGpa)` is its doorbell. */
  readonly disk: VirtioBlk;
}

/** The VMM. */
export class Vmm implements ExitSink {
  readonly core: VmCore;
  readonly log = new VmmEventLog();
  /** The VMM's only way into guest memory: named copy paths (hypervisor/vmm/host-memory.ts). */
  readonly hostMemory: HostMemory;
  readonly devices: VmmDevices;
  /** The VMM's own audit log, used until a verifier (and the core's audit log) is attached. */
  readonly ownAudit = AuditLog.inMemory();
  readonly #name: string;
  readonly #ctx: ExitHandlerContext;
  #platformPinned = false;
  readonly #config: VmmConfig;
  readonly #identity: VmIdentity;
  #pending: ExitOf<'system-event'> | undefined;
  readonly #staged = new Map<KexecSlot, VerifiedKexecImage>();
  #bootKernel: BootKernel | undefined;
  readonly #cpus: VmCpus;

  constructor(config: VmmConfig) {
    this.#config = config;
    // One MAXPHYADDR: an explicit physBits is folded into the model, so the page walk and
    // CPUID 0x80000008 (and the verifier's copy of the model) say the same.
    const given = config.cpu ?? DEFAULT_CPU_MODEL;
    const model = config.physBits !== undefined && config.physBits !== given.physBits ? { ...given, physBits: config.physBits } : given;
    this.#identity = config.identity ?? newVmIdentity();
    const pinOnLock = config.pinPlatformOnLock ?? true;
    this.#ctx = {
      policy: config.policy ?? {},
      log: this.log,
      onConfigureAccepted: (exit) => {
        if (pinOnLock && exit.request.kind === 'lock-cr') this.pinPlatformState();
      },
      onSystemEvent: (exit) => {
        if (exit.type === 'kexec' && !this.#staged.has('kexec'))
          return 'no kexec kernel is loaded (KVM_HC_HEKI_KEXEC_LOAD first); the crash kernel runs only on a panic';
        this.#pending ??= exit;
        return undefined;
      },
      onKexecLoad: (exit) => {
        if (exit.image) this.#staged.set(exit.slot, exit.image);
        else this.#staged.delete(exit.slot);
      },
      ...(config.observer ? { onHandled: (exit: VmExit, action: string, note: string | undefined) => this.core.events?.exit(exit, action, note) } : {}),
    };
    this.core = new VmCore(
      {
        memoryBytes: config.memoryBytes,
        vcpus: config.vcpus ?? model.possibleCpus,
        protectedMemory: config.protectedMemory ?? false,
        physBits: model.physBits,
        ...(config.hypervisor ? { hypervisor: config.hypervisor } : {}),
      },
      this,
    );
    this.#cpus = new VmCpus(this.core, model);
    this.#enableHekiExits();
    this.#name = config.name ?? 'vm0';
    if (config.observer) this.core.observe(config.observer);
    const recorder = new HostRefusalRecorder(this.log, () => ({ log: this.audit, vm: this.core.auth?.vm ?? this.#name }));
    this.hostMemory = new HostMemory(this.core.memory, this.core.memoryAttributes, recorder);
    const diskPort = new DmaPort('virtio-blk', this.core.ept, this.hostMemory, recorder);
    this.devices = { disk: new VirtioBlk(diskPort, config.disk ?? { sectors: 2048 }) };
  }

  /** The configuration this VM was started with, as data ({@link VmSettings}). */
  get settings(): VmSettings {
    const { policy, identity, observer, ...settings } = this.#config;
    return settings;
  }

  /** The VM's name (its verifier requests' `vm`), id and the key id of its state images. */
  get identity(): { readonly vm: string; readonly vmId: string; readonly keyId: string; readonly publicKey: Uint8Array } {
    return {
      vm: this.core.auth?.vm ?? this.#name,
      vmId: this.#identity.vmId,
      keyId: ed25519KeyIdHex(this.#identity.key.publicKey),
      publicKey: this.#identity.key.publicKey,
    };
  }

  /** VMM-internal (hypervisor/vmm/lifecycle/): signs this VM's state images with the per-VM key. */
  get imageSigner(): VmImageSigner {
    return vmImageSigner(this.#identity.key);
  }

  /** The system event the guest asked for and the VMM accepted, not yet carried out. */
  get pendingSystemEvent(): ExitOf<'system-event'> | undefined {
    return this.#pending;
  }

  /** Takes the pending system event (the VMM's main loop is about to carry it out). */
  takePendingSystemEvent(): ExitOf<'system-event'> | undefined {
    const p = this.#pending;
    this.#pending = undefined;
    return p;
  }

  /** The verified kexec image staged in `slot`, if any. */
  staged(slot: KexecSlot): VerifiedKexecImage | undefined {
    return this.#staged.get(slot);
  }

  /** VMM-internal: restores staged slots (a restored state image). */
  restageKexec(slot: KexecSlot, image: VerifiedKexecImage): void {
    this.#staged.set(slot, image);
  }

  /** The kernel the VMM boots at start and on every reboot. */
  get bootKernel(): BootKernel | undefined {
    return this.#bootKernel;
  }

  /** Sets the kernel the VMM boots at start and on every reboot. */
  setBootKernel(kernel: BootKernel): void {
    this.#bootKernel = kernel;
  }

  /**
   * Puts `kernel`'s segments into guest memory (the boot loader's job; a direct kernel boot,
   * as Firecracker does). TRUST: before the first vCPU runs, outside the host copy paths
   * (host-memory.ts says why).
   */
  loadKernel(kernel: BootKernel | undefined = this.#bootKernel): Result<{ segments: number; bytes: number }, string> {
    if (!kernel) return err('the VMM has no kernel to boot');
    return loadKernelSegments(this.core.memory, kernel.elf);
  }

  /**
   * VMM-internal (a restored state image): records whether the platform state was pinned. The
   * filters themselves come back with the core's state.
   */
  markPlatformPinned(pinned: boolean): void {
    this.#platformPinned = pinned;
  }

  /**
   * Where host-side refusals are audited: the core's audit log once a verifier is attached
   * (`core.auth.audit`, one trail with the verdicts), else {@link ownAudit}.
   */
  get audit(): AuditLog {
    return this.core.auth?.audit ?? this.ownAudit;
  }

  #enableHekiExits(): void {
    const masks = this.#config.hekiExits ?? {
      configure: HEKI_CONFIGURE.LOCK_CR | HEKI_CONFIGURE.PROTECT_MEMORY,
      denial: HEKI_DENIAL.CR_PIN | HEKI_DENIAL.IMMUTABLE | HEKI_DENIAL.BAD_PIN | HEKI_DENIAL.VERIFICATION,
    };
    const r = this.core.enableHekiExits(masks.configure, masks.denial);
    if (!r.ok) throw new RangeError(r.error);
  }

  /** The CPU model the VM runs on (VM configuration: kept across reboot, kexec, hibernation, migration). */
  get cpuModel(): CpuModel {
    return this.#cpus.model;
  }

  /** CPUs online now: the model's present ones, plus those brought online since. */
  get onlineCpus(): number {
    return this.#cpus.online;
  }

  /**
   * Brings one more vCPU online (CPU hotplug, hypervisor/vmm/vm-cpus.ts): allowed while fewer
   * than the model's possible CPUs are online; the verifier is told before this resolves.
   * Resolves to the new count, or why not.
   */
  cpuOnline(): Promise<Result<number, string>> {
    return this.#cpus.bringOnline(this.identity.vm, this.audit, this.#config.observer);
  }

  /** VMM-internal (a restored state image): the online count it was saved with; the error says why it does not fit. */
  restoreOnlineCpus(online: number): Result<void, string> {
    return this.#cpus.restoreOnline(online);
  }

  /** {@link readGuestVirtual} on this VM: a debugger's read of guest-virtual memory. */
  readGuestVirtual(va: bigint, len: number): Result<Uint8Array, string> {
    return readGuestVirtual(this.core.vcpus[0]!, this.hostMemory, va, len);
  }

  /** The guest's view of the vCPUs. */
  get cpus(): readonly GuestCpu[] {
    return this.core.vcpus;
  }

  /** The first vCPU, as the guest sees it. */
  get bootCpu(): GuestCpu {
    return this.core.vcpus[0] as GuestCpu;
  }

  /** Whether the VMM has pinned the MSRs and descriptor tables. */
  get platformPinned(): boolean {
    return this.#platformPinned;
  }

  handleExit(exit: VmExit): Reaction {
    return handleExit(this.#ctx, exit);
  }

  /**
   * Pins the syscall/sysenter MSRs, EFER and the descriptor tables: from now on their writes
   * exit to the VMM, whose policy (by default) refuses them with #GP.
   */
  pinPlatformState(): void {
    const r = this.core.setMsrFilter(denyWritesFilter(PINNED_MSRS));
    if (!r.ok) throw new Error(`internal: the VMM's own MSR filter is invalid: ${r.error}`);
    this.core.setCrFilter({ ...this.core.crFilter, descriptorTables: true });
    this.#platformPinned = true;
  }

  /**
   * Resets the VM (reboot): the vCPUs go back to RESET, and pins, locks, filters and exit
   * masks are cleared, as only the VMM may do. The event log keeps its history. `why` is for
   * the VM's observer (a reboot, a kexec, a resume).
   */
  reset(options: { clearMemory: boolean; why?: string } = { clearMemory: false }): void {
    this.core.events?.reset(this.identity.vm, options.why ?? 'reset by the VMM');
    this.core.resetByVmm({ clearMemory: options.clearMemory });
    this.#platformPinned = false;
    this.#pending = undefined;
    // A kexec'd or crash kernel lived in the old kernel's memory: a reset empties the slots.
    this.#staged.clear();
    this.#enableHekiExits();
  }
}
