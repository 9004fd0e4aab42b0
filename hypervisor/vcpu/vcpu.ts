/**
 * One virtual CPU: the guest's {@link GuestCpu}. Every guest action goes through here and is
 * checked in this order, fixed like a CPU's:
 *
 * - memory access: canonical check (#GP) -> page walk (#PF or EPT violation) -> mode, WP,
 *   SMEP, SMAP and NX checks (#PF) -> EPT check of the frame (exit, then #PF) -> the access:
 *   memory-access.ts.
 * - mov to CR: reserved bits (#GP) -> Heki pins (denial, #GP, nothing changes) -> the VMM's
 *   CR filter (exit: allow, #GP, stop) -> the write, and the TLB flush it implies.
 * - wrmsr/rdmsr: unknown MSR or bad value (#GP) -> the VMM's MSR filter (exit) -> the access.
 * - lidt/lgdt: the VMM's descriptor-table filter (exit) -> the load.
 * - out: CPL check (#GP: IOPL is 0) -> operand check (#GP) -> the platform register it
 *   names (shared/platform-io.ts): a lifecycle request exits to the VMM (`system-event`).
 * - vmcall: CPL check (-KVM_EPERM) -> the hypercall table (hypervisor/hypercalls).
 */
import { CR0, CR4, EFER, MSR, MSR_NAMES, crBitNames, type ControlRegister } from '../../shared/x86/cpu.ts';
import type { DescriptorTable, GuestCpu, GuestFault, GuestOutcome } from '../../shared/guest-cpu.ts';
import { HEKI_DENIAL } from '../../shared/exit-reasons.ts';
import { KVM_STATUS } from '../../shared/abi.ts';
import { gvaPageNumber, isCanonical, type Gfn, type GuestVirtAddr } from '../../shared/addr.ts';
import { Tlb } from './tlb.ts';
import { MemoryAccess, type PagingRegs } from './memory-access.ts';
import { gp, stoppedOutcome } from './faults.ts';
import { msrAllowed } from '../core/msr-filter.ts';
import { filteredCrChange } from '../core/cr-filter.ts';
import { dispatchHypercall } from '../hypercalls/dispatch.ts';
import { dispatchHvHypercall } from '../hyperv/hv-dispatch.ts';
import { decodePortWrite, type PortSize } from '../../shared/platform-io.ts';
import type { VmCore } from '../core/vm-core.ts';
import { cpuidLookup, type CpuidRegs } from '../../shared/x86/cpuid.ts';

/** CR0 after RESET (SDM 9.1.1: 60000010H). */
const CR0_RESET = CR0.CD | CR0.NW | CR0.ET;
/** CR0 bits the model accepts; others are reserved (#GP). */
const CR0_VALID = Object.values(CR0).reduce((a, b) => a | b, 0n);
/** CR4 bits the model accepts; others are reserved (#GP). */
const CR4_VALID = Object.values(CR4).reduce((a, b) => a | b, 0n);
/** EFER bits software may write (LMA is set by the CPU). */
const EFER_WRITABLE = EFER.SCE | EFER.LME | EFER.NXE;
/** MSRs that hold linear addresses and must be canonical. */
const CANONICAL_MSRS = new Set<number>([MSR.LSTAR, MSR.CSTAR, MSR.IA32_SYSENTER_EIP, MSR.IA32_SYSENTER_ESP, MSR.FS_BASE, MSR.GS_BASE, MSR.KERNEL_GS_BASE]);

/** Register state the VMM can read and set (KVM_GET/SET_SREGS, KVM_GET/SET_MSRS). */
export interface VcpuState {
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
  cpl: 0 | 3;
  idtr: DescriptorTable;
  gdtr: DescriptorTable;
  msrs: Array<[number, bigint]>;
}

/** How a vCPU is built. */
export interface VcpuOptions {
  /**
   * MAXPHYADDR of the page walk: the CPU model's `physBits` (CPUID 0x80000008 EAX 7:0). The
   * walk's reserved-bit checks take it from here once the MMU honours it.
   */
  readonly physBits: number;
}

/** One vCPU of a {@link VmCore}. */
export class Vcpu implements GuestCpu {
  readonly id: number;
  readonly #core: VmCore;
  readonly tlb = new Tlb();
  /** CR0, CR3, CR4, EFER, CPL and EFLAGS.AC: changed in place, read by the memory path. */
  readonly #r: PagingRegs = { cr0: CR0_RESET, cr3: 0n, cr4: 0n, efer: 0n, cpl: 0, ac: false };
  readonly #mem: MemoryAccess;
  #idtr: DescriptorTable = { base: 0n, limit: 0xffff };
  #gdtr: DescriptorTable = { base: 0n, limit: 0xffff };
  readonly #msrs = new Map<number, bigint>();

  /** MAXPHYADDR of this vCPU (its CPU model's `physBits`). */
  readonly physBits: number;

  constructor(id: number, core: VmCore, options: VcpuOptions = { physBits: 40 }) {
    this.id = id;
    this.physBits = options.physBits;
    this.#core = core;
    this.#mem = new MemoryAccess(id, core, this.tlb, this.#r);
    this.reset();
  }

  /** Back to the RESET state (registers, MSRs, TLB). Called by the core on a VMM reset. */
  reset(): void {
    this.#r.cpl = 0;
    this.#r.ac = false;
    this.#r.cr0 = CR0_RESET;
    this.#r.cr3 = 0n;
    this.#r.cr4 = 0n;
    this.#r.efer = 0n;
    this.#idtr = { base: 0n, limit: 0xffff };
    this.#gdtr = { base: 0n, limit: 0xffff };
    this.#msrs.clear();
    for (const msr of Object.values(MSR)) this.#msrs.set(msr, 0n);
    this.#msrs.set(MSR.IA32_PAT, 0x0007040600070406n);
    this.tlb.flush(false);
  }

  get cpl(): 0 | 3 {
    return this.#r.cpl;
  }

  setCpl(cpl: 0 | 3): void {
    this.#r.cpl = cpl;
  }

  setAc(ac: boolean): void {
    this.#r.ac = ac;
  }

  // ---------------------------------------------------------------- memory

  read(va: GuestVirtAddr, len: number): GuestOutcome<Uint8Array> {
    return this.#mem.read(va, len);
  }

  fetch(va: GuestVirtAddr, len: number): GuestOutcome<Uint8Array> {
    return this.#mem.fetch(va, len);
  }

  write(va: GuestVirtAddr, bytes: Uint8Array): GuestOutcome<void> {
    return this.#mem.write(va, bytes);
  }

  invlpg(va: GuestVirtAddr): void {
    this.tlb.invalidate(gvaPageNumber(va));
  }

  #stoppedFault(): { ok: false; fault: GuestFault } | undefined {
    const s = this.#core.stopped;
    return s === undefined ? undefined : stoppedOutcome(s);
  }

  // ---------------------------------------------------------------- control registers

  readCr(cr: ControlRegister): bigint {
    return cr === 0 ? this.#r.cr0 : cr === 3 ? this.#r.cr3 : this.#r.cr4;
  }

  writeCr(cr: ControlRegister, value: bigint): GuestOutcome<void> {
    const stopped = this.#stoppedFault();
    if (stopped) return stopped;
    if (this.#r.cpl !== 0) return gp('privileged', `mov to CR${cr} at CPL 3`);
    if (cr !== 0 && cr !== 3 && cr !== 4) return gp('bad-cr', `CR${cr as number} cannot be written`);
    if (value < 0n || value >= 1n << 64n) return gp('reserved-bit', `CR${cr} value out of 64-bit range`);
    if (cr === 0 && (value & ~CR0_VALID) !== 0n) return gp('reserved-bit', `reserved CR0 bits 0x${(value & ~CR0_VALID).toString(16)}`);
    if (cr === 4 && (value & ~CR4_VALID) !== 0n) return gp('reserved-bit', `reserved CR4 bits 0x${(value & ~CR4_VALID).toString(16)}`);
    if (cr === 0 && (value & CR0.PG) !== 0n && (value & CR0.PE) === 0n) return gp('reserved-bit', 'CR0.PG without CR0.PE');
    if (cr === 3 && (value & this.#cr3Reserved()) !== 0n) {
      return gp('reserved-bit', `CR3 bits above MAXPHYADDR (${this.#core.physBits}) set: 0x${(value & this.#cr3Reserved()).toString(16)}`);
    }

    if (cr === 0 || cr === 4) {
      const cleared = this.#core.pins.violations(cr, value);
      if (cleared !== 0n) {
        // INVARIANT: a write that clears a pinned bit changes nothing at all, not even the
        // unpinned bits of the same value (Heki v3 KUnit: SMEP and VME cleared together).
        const detail = `mov to CR${cr} would clear pinned ${crBitNames(cr, cleared)}`;
        if (this.#core.denialExits(HEKI_DENIAL.CR_PIN)) {
          const r = this.#core.exit({ reason: 'heki-denial', vcpu: this.id, denial: { kind: 'cr-pin', cr, value, cleared } });
          if (r.action === 'stop') return stoppedOutcome(r.reason);
        }
        return gp('cr-pin', detail);
      }
    }
    const old = this.readCr(cr);
    const changed = filteredCrChange(this.#core.crFilter, cr, old, value);
    if (changed !== 0n) {
      const r = this.#core.exit({ reason: 'cr-write', vcpu: this.id, cr, old, value, changed });
      if (r.action === 'stop') return stoppedOutcome(r.reason);
      if (r.action === 'inject') return gp('cr-filter', `the VMM refused mov to CR${cr} changing ${cr === 3 ? 'CR3' : crBitNames(cr, changed)}`);
    }
    this.#applyCr(cr, value);
    return { ok: true, value: undefined };
  }

  /**
   * CR3 bits MAXPHYADDR..63 are reserved (SDM 4.5.2; KVM's kvm_vcpu_is_illegal_gpa), except
   * bit 63 with CR4.PCIDE = 1 (its "no flush" bit; PCIDs are not modelled, docs/mmu.md).
   */
  #cr3Reserved(): bigint {
    const high = ((1n << 64n) - 1n) & ~((1n << BigInt(this.#core.physBits)) - 1n);
    return (this.#r.cr4 & CR4.PCIDE) !== 0n ? high & ~(1n << 63n) : high;
  }

  #applyCr(cr: ControlRegister, value: bigint): void {
    const old = this.readCr(cr);
    if (cr === 0) this.#r.cr0 = value;
    else if (cr === 3) this.#r.cr3 = value;
    else this.#r.cr4 = value;
    if (cr === 3) this.tlb.flush((this.#r.cr4 & CR4.PGE) !== 0n);
    else if (((old ^ value) & (cr === 0 ? CR0.PG | CR0.PE : CR4.PGE | CR4.PAE | CR4.PSE | CR4.LA57)) !== 0n) this.tlb.flush(false);
  }

  // ---------------------------------------------------------------- MSRs and descriptor tables

  rdmsr(msr: number): GuestOutcome<bigint> {
    const stopped = this.#stoppedFault();
    if (stopped) return stopped;
    if (this.#r.cpl !== 0) return gp('privileged', 'rdmsr at CPL 3');
    const value = this.#msrValue(msr);
    if (value === undefined) return gp('unknown-msr', `rdmsr of unknown MSR 0x${msr.toString(16)}`);
    if (!msrAllowed(this.#core.msrFilter, msr, 'read')) {
      const r = this.#core.exit({ reason: 'msr-read', vcpu: this.id, msr });
      if (r.action === 'stop') return stoppedOutcome(r.reason);
      if (r.action === 'inject') return gp('msr-filter', `the VMM refused rdmsr of ${msrName(msr)}`);
    }
    return { ok: true, value };
  }

  wrmsr(msr: number, value: bigint): GuestOutcome<void> {
    const stopped = this.#stoppedFault();
    if (stopped) return stopped;
    if (this.#r.cpl !== 0) return gp('privileged', 'wrmsr at CPL 3');
    if (!this.#msrs.has(msr)) return gp('unknown-msr', `wrmsr to unknown MSR 0x${msr.toString(16)}`);
    if (value < 0n || value >= 1n << 64n) return gp('reserved-bit', `value out of 64-bit range for ${msrName(msr)}`);
    if (msr === MSR.EFER && (value & ~(EFER_WRITABLE | EFER.LMA)) !== 0n) {
      return gp('reserved-bit', `reserved EFER bits 0x${(value & ~(EFER_WRITABLE | EFER.LMA)).toString(16)}`);
    }
    if (CANONICAL_MSRS.has(msr) && !isCanonical(value)) return gp('non-canonical', `${msrName(msr)} value 0x${value.toString(16)} is not canonical`);
    if (!msrAllowed(this.#core.msrFilter, msr, 'write')) {
      const r = this.#core.exit({ reason: 'msr-write', vcpu: this.id, msr, value });
      if (r.action === 'stop') return stoppedOutcome(r.reason);
      if (r.action === 'inject') return gp('msr-filter', `the VMM refused wrmsr to ${msrName(msr)}`);
    }
    if (msr === MSR.EFER) {
      const old = this.#r.efer;
      this.#r.efer = value & EFER_WRITABLE;
      if (((old ^ this.#r.efer) & EFER.NXE) !== 0n) this.tlb.flush(false);
    } else {
      this.#msrs.set(msr, value);
    }
    return { ok: true, value: undefined };
  }

  #msrValue(msr: number): bigint | undefined {
    if (msr === MSR.EFER) {
      const lma = (this.#r.efer & EFER.LME) !== 0n && (this.#r.cr0 & CR0.PG) !== 0n ? EFER.LMA : 0n;
      return this.#r.efer | lma;
    }
    return this.#msrs.get(msr);
  }

  lidt(table: DescriptorTable): GuestOutcome<void> {
    return this.#loadDt('idtr', table);
  }

  lgdt(table: DescriptorTable): GuestOutcome<void> {
    return this.#loadDt('gdtr', table);
  }

  sidt(): DescriptorTable {
    return this.#idtr;
  }

  sgdt(): DescriptorTable {
    return this.#gdtr;
  }

  #loadDt(which: 'idtr' | 'gdtr', table: DescriptorTable): GuestOutcome<void> {
    const stopped = this.#stoppedFault();
    if (stopped) return stopped;
    if (this.#r.cpl !== 0) return gp('privileged', `l${which.slice(0, 2)}t at CPL 3`);
    if (!isCanonical(table.base) || !Number.isInteger(table.limit) || table.limit < 0 || table.limit > 0xffff) {
      return gp('non-canonical', `bad ${which.toUpperCase()} base 0x${table.base.toString(16)} or limit ${table.limit}`);
    }
    const old = which === 'idtr' ? this.#idtr : this.#gdtr;
    if (this.#core.crFilter.descriptorTables) {
      const r = this.#core.exit({ reason: 'dt-write', vcpu: this.id, table: which, old, value: table });
      if (r.action === 'stop') return stoppedOutcome(r.reason);
      if (r.action === 'inject') return gp('dt-filter', `the VMM refused the load of ${which.toUpperCase()}`);
    }
    if (which === 'idtr') this.#idtr = { ...table };
    else this.#gdtr = { ...table };
    return { ok: true, value: undefined };
  }

  // ---------------------------------------------------------------- CPUID

  /** cpuid: the leaf from the table the VMM set (KVM_SET_CPUID2); zeros for others. */
  cpuid(leaf: number, _subleaf = 0): CpuidRegs {
    return cpuidLookup(this.#core.cpuid, leaf);
  }

  // ---------------------------------------------------------------- port I/O

  out(port: number, value: number, size: PortSize = 1): GuestOutcome<void> {
    const stopped = this.#stoppedFault();
    if (stopped) return stopped;
    // Linux runs with IOPL 0 and no I/O bitmap for the kernel's own ports: out at CPL 3 is #GP.
    if (this.#r.cpl !== 0) return gp('privileged', `out to port 0x${port.toString(16)} at CPL 3`);
    if (!Number.isInteger(port) || port < 0 || port > 0xffff) return gp('bad-operand', `I/O port ${port} is not 0..0xffff`);
    if ((size !== 1 && size !== 2 && size !== 4) || !Number.isInteger(value) || value < 0 || value >= 2 ** (8 * size)) {
      return gp('bad-operand', `out of ${value} does not fit ${size} byte(s)`);
    }
    const w = decodePortWrite(port, value, size);
    if (w.kind === 'none') return { ok: true, value: undefined };
    const r = this.#core.systemEvent(this.id, w.type, w.source);
    if (r.action === 'stop') return stoppedOutcome(r.reason);
    if (r.action === 'resume') return stoppedOutcome(this.#core.stopped ?? `${w.type} in progress`);
    // Refused by the VMM: the write has no effect, as on a platform without the device.
    return { ok: true, value: undefined };
  }

  // ---------------------------------------------------------------- hypercalls

  /**
   * The guest's vmcall. While the VM is watched (VmCore.observe), every hypercall, refused
   * ones included (CPL 3, a stopped VM, an unknown number), is reported once answered.
   */
  async vmcall(nr: number, a0 = 0n, a1 = 0n, a2 = 0n, a3 = 0n): Promise<number> {
    const events = this.#core.events;
    if (events === undefined) return this.#vmcall(nr, a0, a1, a2, a3);
    const start = performance.now();
    const ret = await this.#vmcall(nr, a0, a1, a2, a3);
    const args = [a0, a1, a2, a3].map((a) => BigInt.asUintN(64, a));
    events.hypercall({ vcpu: this.id, nr, args, ret, start, end: performance.now() });
    return ret;
  }

  /** The hypercall itself: the stop and CPL checks, then the table. */
  async #vmcall(nr: number, a0: bigint, a1: bigint, a2: bigint, a3: bigint): Promise<number> {
    if (this.#core.stopped !== undefined) return -KVM_STATUS.KVM_EPERM;
    // KVM's kvm_emulate_hypercall(): a hypercall from CPL > 0 returns -KVM_EPERM.
    if (this.#r.cpl !== 0) return -KVM_STATUS.KVM_EPERM;
    // The Hyper-V personality has its own table (on hardware a CPL 3 hypercall is #UD there).
    if (this.#core.hypervisor === 'hyperv') return dispatchHvHypercall(this.#core, this, nr, [a0, a1, a2, a3]);
    return dispatchHypercall(this.#core, this, nr, [a0, a1, a2, a3]);
  }

  // ---------------------------------------------------------------- core access

  /**
   * Translates `va` with the guest's current page tables for the core itself, like KVM's
   * kvm_read_guest_virt() (memory-access.ts): no checks, no TLB, no exits. TRUST: `va` is a
   * raw guest value (a descriptor field); this is where it is validated.
   */
  translateForCore(va: bigint): Gfn | undefined {
    return this.#mem.translateForCore(va);
  }

  /** Copies `len` bytes at `va` for the core (see {@link translateForCore}); undefined if unmapped. */
  readForCore(va: bigint, len: number): Uint8Array | undefined {
    return this.#mem.readForCore(va, len);
  }

  // ---------------------------------------------------------------- VMM access

  /** KVM_GET_SREGS / KVM_GET_MSRS: the register state, for the VMM. */
  getState(): VcpuState {
    return {
      cr0: this.#r.cr0,
      cr3: this.#r.cr3,
      cr4: this.#r.cr4,
      efer: this.#r.efer,
      cpl: this.#r.cpl,
      idtr: this.#idtr,
      gdtr: this.#gdtr,
      msrs: [...this.#msrs.entries()],
    };
  }

  /**
   * KVM_SET_SREGS / KVM_SET_MSRS: the VMM sets registers directly, as a VMM does to start a
   * 64-bit kernel in long mode. TRUST: the VMM is trusted; this bypasses filters, and is
   * refused if it would clear a pinned bit (the VMM clears pins only by resetting the VM).
   */
  setStateByVmm(state: Partial<VcpuState>): GuestOutcome<void> {
    for (const cr of [0, 4] as const) {
      const v = cr === 0 ? state.cr0 : state.cr4;
      if (v !== undefined && this.#core.pins.violations(cr, v) !== 0n) {
        return gp('cr-pin', `KVM_SET_SREGS would clear pinned CR${cr} bits; reset the VM first`);
      }
    }
    if (state.cr0 !== undefined) this.#r.cr0 = state.cr0;
    if (state.cr3 !== undefined) this.#r.cr3 = state.cr3;
    if (state.cr4 !== undefined) this.#r.cr4 = state.cr4;
    if (state.efer !== undefined) this.#r.efer = state.efer & EFER_WRITABLE;
    if (state.cpl !== undefined) this.#r.cpl = state.cpl;
    if (state.idtr !== undefined) this.#idtr = state.idtr;
    if (state.gdtr !== undefined) this.#gdtr = state.gdtr;
    for (const [msr, value] of state.msrs ?? []) this.#msrs.set(msr, value);
    this.tlb.flush(false);
    return { ok: true, value: undefined };
  }
}

function msrName(msr: number): string {
  return MSR_NAMES.get(msr) ?? `MSR 0x${msr.toString(16)}`;
}
