/**
 * The emulated KVM core of one VM: guest memory, the EPT, the CR pins, the filters the VMM
 * installed, the Heki exit masks, and the vCPUs. This is mechanism only; every policy
 * question is an exit to the VMM through the {@link ExitSink}.
 *
 * The VMM drives it through the methods marked "VMM ioctl" (the shape of KVM's VM ioctls);
 * the guest reaches it only through its vCPUs' GuestCpu interface and hypercalls.
 */
import { gfn } from '../../shared/addr.ts';
import { GuestMemory } from '../memory/guest-memory.ts';
import { Ept } from '../ept/ept.ts';
import { MemoryAttributes } from '../memory/memory-attributes.ts';
import { CrPins } from '../vcpu/cr-pins.ts';
import { ALLOW_ALL_MSRS, type MsrFilter, validateMsrFilter } from './msr-filter.ts';
import { NO_CR_FILTER, type CrFilter } from './cr-filter.ts';
import type { ExitSink, Reaction, VmExit } from '../exits/exit.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { HEKI_CONFIGURE, HEKI_DENIAL } from '../../shared/exit-reasons.ts';
import type { SystemEventType } from '../../shared/platform-io.ts';
import { Vcpu } from '../vcpu/vcpu.ts';
import { DEFAULT_PHYS_BITS, reservedAddressBits } from '../vcpu/mmu.ts';
import { Authenticator, type KernelRegion, type VerifierPort } from './auth/authenticator.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { EPT_FROZEN } from '../ept/permissions.ts';
import { CORE_STATE_VERSION, type CoreState, type CoreStateError } from './core-state.ts';
import { HostEvents } from '../observe/host-events.ts';
import type { CpuidRegs } from '../../shared/x86/cpuid.ts';
import type { VmObserver } from '../observe/vm-observer.ts';
import type { HypervisorKind } from '../../shared/hypervisor-kind.ts';
import { CR0_PIN_MASK, CR4_PIN_MASK } from '../../shared/hv-vsm-abi.ts';

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
  /**
   * MAXPHYADDR of the vCPUs (CPUID 0x80000008 EAX[7:0], Linux's `x86_phys_bits`), 32 to 52;
   * default {@link DEFAULT_PHYS_BITS} (40, as the reference CPUs). Bits from it to 51 are
   * reserved in every paging-structure entry and in CR3.
   */
  readonly physBits?: number;
  /**
   * The hypervisor this core is (default `kvm`): which hypercall ABI the vCPUs' vmcall reaches
   * (hypervisor/hypercalls/dispatch.ts, or hypervisor/hyperv/hv-dispatch.ts for `hyperv`).
   */
  readonly hypervisor?: HypervisorKind;
}

/** The core of one VM. */
export class VmCore {
  readonly memory: GuestMemory;
  readonly ept: Ept;
  /** Private and shared frames (protected-memory mode); the VMM's copy paths consult it. */
  readonly memoryAttributes: MemoryAttributes;
  readonly pins: CrPins;
  readonly vcpus: readonly Vcpu[];
  /** MAXPHYADDR of every vCPU ({@link VmConfig.physBits}). */
  readonly physBits: number;
  /** The hypervisor personality ({@link VmConfig.hypervisor}); fixed for the core's life. */
  readonly hypervisor: HypervisorKind;
  #sink: ExitSink;
  #msrFilter: MsrFilter = ALLOW_ALL_MSRS;
  #crFilter: CrFilter = NO_CR_FILTER;
  #configureMask = 0;
  #denialMask = 0;
  #stopped: string | undefined;
  #parked: string | undefined;
  #auth: Authenticator | undefined;
  #events: HostEvents | undefined;
  #cpuid: ReadonlyMap<number, CpuidRegs> = new Map();

  constructor(config: VmConfig, sink: ExitSink) {
    if (!Number.isInteger(config.vcpus) || config.vcpus < 1 || config.vcpus > 256) {
      throw new RangeError(`a VM has 1 to 256 vCPUs, got ${config.vcpus}`);
    }
    this.physBits = config.physBits ?? DEFAULT_PHYS_BITS;
    this.hypervisor = config.hypervisor ?? 'kvm';
    this.pins = this.hypervisor === 'hyperv' ? new CrPins({ 0: CR0_PIN_MASK, 4: CR4_PIN_MASK }) : new CrPins();
    reservedAddressBits(this.physBits); // throws a RangeError naming a bad value
    this.memory = new GuestMemory(config.memoryBytes);
    this.ept = new Ept(this.memory.frames);
    this.memoryAttributes = new MemoryAttributes(this.memory.frames, config.protectedMemory ?? false);
    this.#sink = sink;
    const physBits = config.physBits ?? 40;
    this.vcpus = Array.from({ length: config.vcpus }, (_, id) => new Vcpu(id, this, { physBits }));
  }

  /**
   * VMM ioctl (KVM_SET_CPUID2): the CPUID leaves every vCPU answers from now on. The VMM
   * builds them from its CPU model (shared/x86/cpuid.ts); the core only serves them.
   */
  setCpuid(table: ReadonlyMap<number, CpuidRegs>): void {
    this.#cpuid = table;
  }

  /** The CPUID leaves the vCPUs answer (KVM_GET_CPUID2). */
  get cpuid(): ReadonlyMap<number, CpuidRegs> {
    return this.#cpuid;
  }

  /**
   * VMM ioctl: installs a watcher of this VM's hypercalls, exits, EPT updates and resets
   * (hypervisor/observe/), or removes it (undefined). It only watches: nothing it does
   * changes what the VM does.
   */
  observe(observer: VmObserver | undefined): void {
    this.#events?.flushEpt();
    this.ept.watch(undefined);
    this.#events = observer ? new HostEvents(observer, this.ept) : undefined;
  }

  /** Where host events go, or undefined when nobody watches (the hooks' one check). */
  get events(): HostEvents | undefined {
    return this.#events;
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
    this.#auth?.retire();
    this.#auth = new Authenticator(config, this.ept);
  }

  /**
   * Why the VM was stopped, or parked for a lifecycle event the VMM is carrying out, or
   * undefined while it runs.
   */
  get stopped(): string | undefined {
    return this.#stopped ?? this.#parked;
  }

  /** Why the VM is parked for a system event (undefined when it is not). */
  get parked(): string | undefined {
    return this.#parked;
  }

  /**
   * A vCPU asks for a lifecycle event (a platform register write, KVM_HC_HEKI_KEXEC). The
   * VMM decides; when it accepts, the VM is parked: every vCPU operation reports `stopped`
   * until the VMM has carried the event out (and reset the VM). INVARIANT: no instruction of
   * the old kernel runs after an accepted reset, kexec or hibernation.
   */
  systemEvent(vcpu: number, type: SystemEventType, source: string): Reaction {
    const r = this.exit({ reason: 'system-event', vcpu, type, source });
    if (r.action === 'resume') this.#parked = `${type} requested (${source}); the VMM is carrying it out`;
    return r;
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

  /**
   * VMM ioctl: the VMM could not carry out the event it accepted (a hibernation it cannot
   * write): the parked vCPUs run on, every protection unchanged.
   */
  unpark(): void {
    this.#parked = undefined;
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
    this.#parked = undefined;
    if (this.#auth) {
      this.#auth.retire();
      this.#auth = new Authenticator(this.#auth, this.ept);
    }
    if (options.clearMemory) this.memory.clear();
    for (const v of this.vcpus) v.reset();
  }

  /**
   * VMM ioctl: the protection state and the vCPUs' registers, as plain data (hibernation,
   * migration). Refused while a verification holds frames frozen: the state would record a
   * half-applied change.
   */
  saveState(options: { readonly ept?: boolean } = {}): { ok: true; value: CoreState } | { ok: false; error: CoreStateError } {
    if (this.#auth?.busy) return err({ kind: 'busy', message: 'a verification is in flight (frames are frozen); save the state after it ends' });
    const auth = this.#auth;
    return ok({
      version: CORE_STATE_VERSION,
      memoryBytes: this.memory.size,
      pins: { cr0: this.pins.get(0), cr4: this.pins.get(4) },
      msrFilter: this.#msrFilter,
      crFilter: this.#crFilter,
      hekiExitMasks: this.hekiExitMasks,
      // Without the EPT (`ept: false`) for a fork, which copies the EPT's leaves instead.
      ept: options.ept === false ? [] : eptRuns(this.ept.entries()),
      protectedMemory: this.memoryAttributes.protected,
      sharedFrames: this.memoryAttributes.sharedFrames(),
      vcpus: this.vcpus.map((v) => v.getState()),
      auth: auth ? { vm: auth.vm, kernelRegions: auth.kernelRegions, ...auth.exportState() } : undefined,
    });
  }

  /**
   * VMM ioctl: re-applies a saved state: pins, filters, exit masks, every EPT attribute
   * (IMMUTABLE included), shared frames, the vCPUs' registers and the authenticator's
   * records. INVARIANT: only into a VM fresh from {@link resetByVmm} or creation (no pin, no
   * EPT lock, no authenticated record), so a load can never weaken a running VM's protection;
   * and before any vCPU runs. The verifier must be attached already when the state has
   * authenticator records, under the same VM name. Nothing changes when it is refused.
   */
  loadState(state: CoreState): { ok: true; value: undefined } | { ok: false; error: CoreStateError } {
    const mismatch = (message: string) => err<CoreStateError>({ kind: 'mismatch', message });
    if (state.version !== CORE_STATE_VERSION) return mismatch(`core state version ${state.version} is not ${CORE_STATE_VERSION}`);
    if (state.memoryBytes !== this.memory.size) return mismatch(`the state is for ${state.memoryBytes} bytes of RAM, this VM has ${this.memory.size}`);
    if (state.vcpus.length !== this.vcpus.length) return mismatch(`the state has ${state.vcpus.length} vCPUs, this VM has ${this.vcpus.length}`);
    if (state.protectedMemory !== this.memoryAttributes.protected)
      return mismatch(
        `the state is ${state.protectedMemory ? '' : 'not '}in protected-memory mode, this VM is ${this.memoryAttributes.protected ? '' : 'not'}`,
      );
    const fresh =
      this.pins.get(0) === 0n &&
      this.pins.get(4) === 0n &&
      this.ept.entries().length === 0 &&
      !(this.#auth?.bootEnded ?? false) &&
      (this.#auth?.modules.size ?? 0) === 0;
    if (!fresh) return err({ kind: 'not-fresh', message: 'the VM has pins, EPT locks or authenticated records: reset it before loading a state' });
    if (state.auth && (!this.#auth || this.#auth.vm !== state.auth.vm))
      return mismatch(`the state's authenticator records belong to VM '${state.auth.vm}'; attach its verifier first`);
    if (state.auth && !sameRegions(state.auth.kernelRegions, this.#auth!.kernelRegions))
      return mismatch('the state was saved under other kernel regions than the attached manifest names');
    const v = validateMsrFilter(state.msrFilter);
    if (!v.ok) return mismatch(`the saved MSR filter is invalid: ${v.error}`);
    for (const cr of [0, 4] as const) {
      const bad = this.pins.unpinnable(cr, cr === 0 ? state.pins.cr0 : state.pins.cr4);
      if (bad !== 0n) return mismatch(`the saved CR${cr} pins hold unpinnable bits 0x${bad.toString(16)}`);
    }
    const bad = state.ept.find(([f, n]) => !Number.isSafeInteger(f) || !Number.isSafeInteger(n) || f < 0 || n < 1 || f + n > this.memory.frames);
    if (bad) return mismatch(`the saved EPT names frames [${bad[0]}, +${bad[1]}), outside this VM's ${this.memory.frames} frames`);
    // Registers first: KVM_SET_SREGS refuses to clear pinned bits, and no pin is set yet.
    for (const [i, vs] of state.vcpus.entries()) {
      const r = (this.vcpus[i] as Vcpu).setStateByVmm(vs);
      if (!r.ok) return mismatch(`vCPU ${i}: ${r.fault.kind === 'fault' ? r.fault.detail : r.fault.detail}`);
    }
    this.pins.pin(0, state.pins.cr0);
    this.pins.pin(4, state.pins.cr4);
    this.#msrFilter = state.msrFilter;
    this.#crFilter = state.crFilter;
    const masks = this.enableHekiExits(state.hekiExitMasks.configure, state.hekiExitMasks.denial);
    if (!masks.ok) return mismatch(masks.error);
    // The saved state is data: its frame numbers become Gfn through the validating constructor.
    for (const [f, n, p] of state.ept) this.ept.setRange(gfn(f), n, p & ~EPT_FROZEN);
    for (const f of state.sharedFrames) this.memoryAttributes.setPrivate(gfn(f), 1, false);
    if (state.auth) this.#auth?.importState(state.auth);
    this.#events?.flushEpt();
    return ok(undefined);
  }

  /**
   * VMM ioctl (heki-sim's fork of a booted VM): makes this VM, fresh from creation with the
   * same configuration and its verifier attached under the same VM name, a copy of `parent`
   * as it is now: guest memory shared copy-on-write (GuestMemory.shareFrom), the EPT copied
   * leaf by leaf, and pins, filters, exit masks, shared frames, the vCPUs' registers and the
   * authenticator's records through {@link saveState} and {@link loadState}, so a fork gets
   * exactly what a restored image would. The vCPUs' TLBs start empty (flushed), as after a
   * restore. Refused, changing nothing, while `parent` verifies (frames frozen) or when the
   * two do not fit.
   *
   * INVARIANT: no object is shared between the two VMs but page buffers neither writes in
   * place (the state is cloned, the EPT leaves copied).
   */
  forkFrom(parent: VmCore): { ok: true; value: undefined } | { ok: false; error: CoreStateError } {
    const saved = parent.saveState({ ept: false });
    if (!saved.ok) return saved;
    if (parent.memory.size !== this.memory.size)
      return err({ kind: 'mismatch', message: `the parent VM has ${parent.memory.size} bytes of RAM, this VM ${this.memory.size}` });
    if (this.memory.residentPages() !== 0) return err({ kind: 'not-fresh', message: 'the VM has memory in use: a fork starts from a VM fresh from creation' });
    const loaded = this.loadState(structuredClone(saved.value));
    if (!loaded.ok) return loaded;
    this.memory.shareFrom(parent.memory);
    this.ept.copyFrom(parent.ept);
    this.#events?.flushEpt();
    return ok(undefined);
  }
}

function sameRegions(a: readonly KernelRegion[], b: readonly KernelRegion[]): boolean {
  return a.length === b.length && a.every((r, i) => r.name === b[i]!.name && r.vaddr === b[i]!.vaddr && r.paddr === b[i]!.paddr && r.size === b[i]!.size);
}

/** EPT entries (ascending) as runs of equal permissions, FROZEN dropped. */
function eptRuns(entries: ReadonlyArray<[number, number]>): Array<[number, number, number]> {
  const runs: Array<[number, number, number]> = [];
  for (const [f, p0] of entries) {
    const p = p0 & ~EPT_FROZEN;
    const last = runs[runs.length - 1];
    if (last && last[0] + last[1] === f && last[2] === p) last[1]++;
    else runs.push([f, 1, p]);
  }
  return runs;
}
