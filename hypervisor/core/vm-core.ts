/**
 * The emulated KVM core of one VM: guest memory, the EPT, the CR pins, the filters the VMM
 * installed, the Heki exit masks, and the vCPUs. This is mechanism only; every policy
 * question is an exit to the VMM through the {@link ExitSink}.
 *
 * The VMM drives it through the methods marked "VMM ioctl" (the shape of KVM's VM ioctls);
 * the guest reaches it only through its vCPUs' GuestCpu interface and hypercalls.
 */
import { GuestMemory } from '../memory/guest-memory.ts';
import { Ept } from '../ept/ept.ts';
import { MemoryAttributes } from '../memory/memory-attributes.ts';
import { CrPins } from '../vcpu/cr-pins.ts';
import { ALLOW_ALL_MSRS, type MsrFilter, validateMsrFilter } from './msr-filter.ts';
import { NO_CR_FILTER, type CrFilter } from './cr-filter.ts';
import type { ExitSink, Reaction, VmExit } from '../exits/exit.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { HEKI_CONFIGURE, HEKI_DENIAL } from '../../shared/exit-reasons.ts';
import { Vcpu } from '../vcpu/vcpu.ts';
import { Authenticator, type KernelRegion, type VerifierPort } from './auth/authenticator.ts';
import type { AuditLog } from '../../verifier-vm/audit-log.ts';

/** How to build a VM. */
export interface VmConfig {
  /** Bytes of guest RAM, a multiple of 4 KiB. */
  readonly memoryBytes: bigint;
  /** Number of vCPUs (at least 1). */
  readonly vcpus: number;
  /**
   * Protected-memory mode: guest memory starts private and only ranges the guest shares with
   * KVM_HC_MAP_GPA_RANGE are visible to the VMM (default false: everything is shared).
   */
  readonly protectedMemory?: boolean;
}

/** The core of one VM. */
export class VmCore {
  readonly memory: GuestMemory;
  readonly ept: Ept;
  /** Private and shared frames (protected-memory mode); the VMM's copy paths consult it. */
  readonly memoryAttributes: MemoryAttributes;
  readonly pins = new CrPins();
  readonly vcpus: readonly Vcpu[];
  #sink: ExitSink;
  #msrFilter: MsrFilter = ALLOW_ALL_MSRS;
  #crFilter: CrFilter = NO_CR_FILTER;
  #configureMask = 0;
  #denialMask = 0;
  #stopped: string | undefined;
  #auth: Authenticator | undefined;

  constructor(config: VmConfig, sink: ExitSink) {
    if (!Number.isInteger(config.vcpus) || config.vcpus < 1 || config.vcpus > 256) {
      throw new RangeError(`a VM has 1 to 256 vCPUs, got ${config.vcpus}`);
    }
    this.memory = new GuestMemory(config.memoryBytes);
    this.ept = new Ept(this.memory.frames);
    this.memoryAttributes = new MemoryAttributes(this.memory.frames, config.protectedMemory ?? false);
    this.#sink = sink;
    this.vcpus = Array.from({ length: config.vcpus }, (_, id) => new Vcpu(id, this));
  }

  /** The authenticated-change state, once the VMM attached a verifier. */
  get auth(): Authenticator | undefined {
    return this.#auth;
  }

  /**
   * VMM ioctl: attaches the verifier VM. From now on the heki-sim authenticated hypercalls
   * work (without a verifier they return -KVM_EOPNOTSUPP). `kernelRegions` come from the
   * manifest: where the kernel image's sections sit, virtually and physically.
   */
  attachVerifier(config: { port: VerifierPort; vm: string; audit: AuditLog; kernelRegions: readonly KernelRegion[] }): void {
    this.#auth = new Authenticator(config, this.ept);
  }

  /** Why the VM was stopped, or undefined while it runs. */
  get stopped(): string | undefined {
    return this.#stopped;
  }

  get msrFilter(): MsrFilter {
    return this.#msrFilter;
  }

  get crFilter(): CrFilter {
    return this.#crFilter;
  }

  /** Enabled `KVM_CAP_HEKI_CONFIGURE` and `KVM_CAP_HEKI_DENIAL` masks. */
  get hekiExitMasks(): { configure: number; denial: number } {
    return { configure: this.#configureMask, denial: this.#denialMask };
  }

  /** VMM ioctl: installs an MSR filter (KVM_X86_SET_MSR_FILTER). */
  setMsrFilter(filter: MsrFilter): Result<void, string> {
    const v = validateMsrFilter(filter);
    if (!v.ok) return err(v.error);
    this.#msrFilter = filter;
    return ok(undefined);
  }

  /** VMM ioctl: installs a CR-write filter. */
  setCrFilter(filter: CrFilter): void {
    this.#crFilter = filter;
  }

  /**
   * VMM ioctl: enables Heki exits (KVM_ENABLE_CAP with KVM_CAP_HEKI_CONFIGURE and
   * KVM_CAP_HEKI_DENIAL). Unknown bits are refused, as KVM refuses unknown cap arguments.
   */
  enableHekiExits(configure: number, denial: number): Result<void, string> {
    const cfgAll = HEKI_CONFIGURE.LOCK_CR | HEKI_CONFIGURE.PROTECT_MEMORY;
    const denAll = HEKI_DENIAL.CR_PIN | HEKI_DENIAL.IMMUTABLE | HEKI_DENIAL.BAD_PIN | HEKI_DENIAL.VERIFICATION;
    if ((configure & ~cfgAll) !== 0) return err(`unknown KVM_CAP_HEKI_CONFIGURE bits 0x${(configure & ~cfgAll).toString(16)}`);
    if ((denial & ~denAll) !== 0) return err(`unknown KVM_CAP_HEKI_DENIAL bits 0x${(denial & ~denAll).toString(16)}`);
    this.#configureMask = configure;
    this.#denialMask = denial;
    return ok(undefined);
  }

  /** True when configuration requests of this kind exit to the VMM. */
  configureExits(bit: number): boolean {
    return (this.#configureMask & bit) !== 0;
  }

  /** True when denials of this kind exit to the VMM. */
  denialExits(bit: number): boolean {
    return (this.#denialMask & bit) !== 0;
  }

  /**
   * Hands an exit to the VMM and returns its reaction. A VMM that throws is a broken VMM:
   * the VM stops (fail closed) rather than guess.
   */
  exit(e: VmExit): Reaction {
    let r: Reaction;
    try {
      r = this.#sink.handleExit(e);
    } catch (cause) {
      r = { action: 'stop', reason: `the VMM failed while handling a ${e.reason} exit: ${String(cause)}` };
    }
    if (r.action === 'stop') this.stop(r.reason);
    return r;
  }

  /** Stops the VM: every vCPU operation from now on reports `stopped`. */
  stop(reason: string): void {
    this.#stopped ??= reason;
  }

  /**
   * VMM ioctl: resets the VM as a reboot does (vCPU INIT, as the paravirtual CR-pinning series
   * specified: pins are cleared on reset, and only then). Clears pins, EPT locks, filters and
   * exit masks; memory is kept (a warm reset) unless `clearMemory`. In protected-memory
   * mode every frame becomes private again: the rebooted guest shares what it needs anew.
   */
  resetByVmm(options: { clearMemory: boolean }): void {
    this.pins.resetByVmm();
    this.ept.reset();
    if (this.memoryAttributes.protected) this.memoryAttributes.reset();
    this.#msrFilter = ALLOW_ALL_MSRS;
    this.#crFilter = NO_CR_FILTER;
    this.#configureMask = 0;
    this.#denialMask = 0;
    this.#stopped = undefined;
    if (this.#auth) this.#auth = new Authenticator(this.#auth, this.ept);
    if (options.clearMemory) this.memory.clear();
    for (const v of this.vcpus) v.reset();
  }
}
