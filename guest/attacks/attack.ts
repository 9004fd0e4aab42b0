/**
 * The shape of the security regression catalogue: an {@link Attack} is exploit code run by an
 * attacker who owns the guest kernel after boot. It acts only through what such an attacker
 * holds: the guest's vCPU ({@link GuestCpu}) and the guest kernel's own objects (its page
 * tables, its memory manager, its Heki backend, its module loader). It never touches a
 * hypervisor object; the few attacks that are host-side by nature (a verifier crash, a
 * foreign verdict, a device's DMA, the VMM reading guest memory) go through the narrow
 * {@link AttackHost} interface, which the runtime implements (machine/attack-host.ts), so
 * guest/ still imports nothing from hypervisor/ or verifier-vm/.
 *
 * INVARIANT (honesty): an attack performs the real exploit step and checks its effect (the
 * byte changed, the code was fetched, the register kept the value, the page became
 * executable). It reports `stopped: false` when the effect happened, whatever the error
 * messages said on the way. A regression then shows up as a failed attack, never as a
 * weakened one.
 */
import { type GuestPhysAddr } from '../../shared/addr.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { CodePlacementSigner } from '../bpf/code-signer.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';
import type { MitigationFeature } from '../../shared/x86/cpu-features.ts';

/** What one attack observed. */
export interface AttackResult {
  /** True when the protection held: the exploit step had no effect. */
  readonly stopped: boolean;
  /**
   * What actually stopped it, as the guest saw it (`#PF (ept-violation) at 0x...`,
   * `-KVM_EPERM from KVM_HC_HEKI_LOAD_MODULE`), or what got through when it was not stopped.
   * The runner appends what the host recorded (the VM exit, the audit record).
   */
  readonly stop: string;
  /** The steps taken and the state checked afterwards. */
  readonly detail: string;
}

/**
 * Signs a module file (ELF plus any trailer) and returns it with its trailer replaced: a
 * stand-in for a signing key the attacker holds. The key never enters the guest.
 */
export type ModuleFileSigner = (file: Uint8Array) => Uint8Array;

/** Module signers the runtime hands to attacks. */
export interface AttackSigners {
  /** A key the verifier has never heard of (the attacker's own). */
  readonly attacker: ModuleFileSigner;
  /** A key the keyring holds but has revoked; present when the attack {@link AttackNeeds.revokedKey needs} it. */
  readonly revoked?: ModuleFileSigner;
  /**
   * A trusted code-image signer (a BPF signing service), for attacks that misuse a genuine
   * signature, e.g. one issued for another load address.
   */
  readonly code: CodePlacementSigner;
}

/** Counters of the verifier link, as the host reports them. */
export interface VerifierCounters {
  /** Requests sent to the verifier. */
  readonly requests: number;
  /** Requests denied because the verifier could not answer (fail closed). */
  readonly failClosed: number;
  /** Verifier workers replaced after a crash, hang or garbage answer. */
  readonly restarts: number;
  /** Requests refused at once because the verifier's queue was full (-KVM_EAGAIN). */
  readonly busy: number;
}

/** What a host-side operation did: done, or refused with the host's message. */
export type HostOutcome<T = void> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

/** The VMM's named copy paths into guest memory that an attack may drive (hypervisor/vmm/host-memory.ts). */
export type HostCopyPathName = 'snapshot' | 'migration' | 'debug';

/**
 * The host-side actions of the few attacks that are host-side by nature. Implemented by
 * machine/attack-host.ts on a real machine; an attack that needs a machine feature declares
 * it in {@link AttackNeeds}.
 */
export interface AttackHost {
  /**
   * The emulated virtio-blk disk's doorbell: the device handles the request whose descriptor
   * (shared/virtio-blk.ts) the guest wrote at guest-physical `descGpa`, moving data by DMA.
   * The guest rings it; the transfer is the host's.
   */
  ringDiskDoorbell(descGpa: bigint): HostOutcome;
  /** `count` sectors of the disk's contents from `sector` (to see what reached the host). */
  readDiskSectors(sector: number, count: number): Uint8Array;
  /** The VMM copying guest memory out through one of its copy paths: a curious or compromised host. */
  vmmReadGuest(path: HostCopyPathName, gpa: GuestPhysAddr, len: number): HostOutcome<Uint8Array>;
  /** Arms the verifier VM to crash (its process exits) when it receives the next request. */
  crashVerifierOnNextRequest(): Promise<boolean>;
  /**
   * Arms the verifier channel to answer the next request with the verifier's real verdict
   * stamped with another request's id: what a replayed or misrouted verdict looks like.
   */
  answerNextRequestWithForeignVerdict(): Promise<boolean>;
  /** The verifier link's counters. */
  verifierCounters(): VerifierCounters;
  /**
   * The VMM's main loop carrying out the system event the guest's last request left pending
   * (a reset the guest asked for through the reset control register: pins, locks and RAM
   * cleared, the boot kernel loaded again, the vCPUs at RESET), as it does for any guest.
   * Resolves to what the VMM did, or why nothing was carried out.
   */
  carryOutSystemEvent(): Promise<HostOutcome<string>>;
}

/**
 * What the VMM's CPU model must be for an attack to apply; the runner checks it before
 * booting and reports an attack whose needs the model does not meet as not applicable, with
 * the reason, never as stopped. Features are the mitigation bits of shared/x86/cpu-features.ts.
 */
export interface CpuModelNeeds {
  /** Every one of these features. */
  readonly features?: readonly MitigationFeature[];
  /** At least one of these features. */
  readonly anyOf?: readonly MitigationFeature[];
  /** At least one of these features missing. */
  readonly lacksAnyOf?: readonly MitigationFeature[];
  /** The kernel keeps its SMP lock prefixes at boot: more than one CPU present (or `noreplace-smp`). */
  readonly smp?: boolean;
}

/** What an attack needs from the machine it runs on; the runner honours it. */
export interface AttackNeeds {
  /** A module-signing key in the keyring that a revocation file revokes ({@link AttackSigners.revoked}). */
  readonly revokedKey?: boolean;
  /** Fault injection into the verifier worker ({@link AttackHost} crash and foreign verdicts). */
  readonly verifierFaults?: boolean;
  /** Protected-memory mode: guest memory private to the guest unless shared (KVM_HC_MAP_GPA_RANGE). */
  readonly protectedMemory?: boolean;
  /** A CPU model with these properties; on another model the attack does not apply. */
  readonly cpu?: CpuModelNeeds;
}

/** Everything an attack may use. */
export interface AttackContext {
  /** The booted guest kernel the attacker owns. */
  readonly kernel: GuestKernel;
  /** Its vCPU (the same as `kernel.cpu`). */
  readonly cpu: GuestCpu;
  /**
   * The bytes of the fixture module `<name>.ko` (userspace handing the kernel a file: guest
   * code cannot read host files), or undefined when there is no such file.
   */
  moduleFile(name: string): Uint8Array | undefined;
  /** Signing stand-ins. */
  readonly signers: AttackSigners;
  /** Host-side actions, for the attacks that are host-side by nature. */
  readonly host: AttackHost;
}

/** One named attack of the catalogue. */
export interface Attack {
  /** Kebab-case and stable: users' scripts name attacks by it. */
  readonly name: string;
  /** One line saying what the attacker does. */
  readonly title: string;
  /** Which fault, exit or audit record must stop it. */
  readonly expectedStop: string;
  /** What the machine must provide. */
  readonly needs?: AttackNeeds;
  /** Performs the attack on a freshly booted kernel and checks its effect. */
  run(ctx: AttackContext): Promise<AttackResult>;
}
