/**
 * The only door from the guest kernel into the machine: one virtual CPU, as the guest sees
 * it. Guest code (guest/) holds a {@link GuestCpu} and nothing else of the hypervisor, so an
 * attacker who owns the guest can do exactly what these methods allow and no more.
 *
 * Accesses take guest-virtual addresses and go through the vCPU's MMU (the guest's own
 * 4-level page tables, walked in guest memory) and then the EPT. With paging off (CR0.PG
 * clear) a virtual address is the physical one, as on real hardware before the kernel
 * enables paging.
 *
 * TRUST: addresses are typed {@link GuestVirtAddr} (canonical by construction), but brands are
 * erased at run time and guest code is the attacker: the vCPU still checks every address it
 * is given (#GP for a non-canonical one), as the CPU does.
 */
import type { ControlRegister } from './x86/cpu.ts';
import type { CpuidRegs } from './x86/cpuid.ts';
import type { GuestVirtAddr } from './addr.ts';

/** Kind of memory access. */
export type AccessKind = 'read' | 'write' | 'fetch';

/** Privilege of an access: CPL 0 (kernel) or CPL 3 (user). */
export type AccessMode = 'kernel' | 'user';

/** A fault delivered to the guest, or the VM being stopped by the VMM. */
export type GuestFault =
  | {
      readonly kind: 'fault';
      /** `PF`, `GP` or `UD`. */
      readonly vector: 'PF' | 'GP' | 'UD';
      /** Architectural error code (PF_ERR bits for #PF, 0 for #GP). */
      readonly errorCode: number;
      /** For #PF, the faulting linear address (what the CPU writes to CR2). */
      readonly address?: GuestVirtAddr;
      /** Why, in words a test or a user can match on: `ept-violation`, `cr-pin`, ... */
      readonly cause: string;
      /** The full explanation. */
      readonly detail: string;
    }
  | {
      readonly kind: 'stopped';
      /** Why the VMM stopped the VM. */
      readonly detail: string;
    };

/** What a guest operation returns: the value, or the fault the guest took. */
export type GuestOutcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly fault: GuestFault };

/** A descriptor-table register (IDTR or GDTR). */
export interface DescriptorTable {
  readonly base: bigint;
  readonly limit: number;
}

/** The guest's view of one vCPU. */
export interface GuestCpu {
  /** Index of this vCPU in its VM. */
  readonly id: number;
  /** Current privilege level: 0 (kernel) or 3 (user). */
  readonly cpl: 0 | 3;
  /** Changes privilege, as syscall/sysret/iret would. */
  setCpl(cpl: 0 | 3): void;
  /** Sets RFLAGS.AC, as stac/clac do (SMAP lets supervisor data accesses to user pages when set). */
  setAc(ac: boolean): void;

  /** Reads `len` bytes at virtual address `va`. */
  read(va: GuestVirtAddr, len: number): GuestOutcome<Uint8Array>;
  /** Writes `bytes` at `va`; all or nothing: a fault on any page writes no byte. */
  write(va: GuestVirtAddr, bytes: Uint8Array): GuestOutcome<void>;
  /** Fetches `len` instruction bytes at `va` (an execute access). */
  fetch(va: GuestVirtAddr, len: number): GuestOutcome<Uint8Array>;
  /** Drops the TLB entry of `va` (invlpg). */
  invlpg(va: GuestVirtAddr): void;

  /** Reads CR0, CR3 or CR4. */
  readCr(cr: ControlRegister): bigint;
  /** mov to CR0, CR3 or CR4. */
  writeCr(cr: ControlRegister, value: bigint): GuestOutcome<void>;
  /** rdmsr. */
  rdmsr(msr: number): GuestOutcome<bigint>;
  /** wrmsr. */
  wrmsr(msr: number, value: bigint): GuestOutcome<void>;
  /** lidt. */
  lidt(table: DescriptorTable): GuestOutcome<void>;
  /** lgdt. */
  lgdt(table: DescriptorTable): GuestOutcome<void>;
  /** sidt. */
  sidt(): DescriptorTable;
  /** sgdt. */
  sgdt(): DescriptorTable;

  /**
   * cpuid: what the VMM's CPU model says for `leaf` (and `subleaf`, which no leaf answered
   * uses): the leaves of shared/x86/cpuid.ts, zeros for any other. Allowed at any CPL, as on
   * hardware; the guest learns its CPU model only this way.
   */
  cpuid(leaf: number, subleaf?: number): CpuidRegs;

  /**
   * out: writes `value` (`size` bytes) to I/O port `port`. Privileged (IOPL 0): #GP at CPL 3.
   * The platform's reset, pvpanic and ACPI sleep registers (shared/platform-io.ts) ask the VMM
   * for a lifecycle event; when it accepts, the VM leaves guest mode (the outcome is
   * `stopped`) until the VMM has carried the event out. Other ports are unclaimed.
   */
  out(port: number, value: number, size?: 1 | 2 | 4): GuestOutcome<void>;

  /**
   * vmcall: hypercall `nr` with arguments a0..a3. Resolves to what KVM leaves in RAX: 0 or a
   * positive value on success, a negated KVM status on failure. The vCPU is blocked until
   * then: an authenticated change waits for the verifier's verdict. Never rejects.
   */
  vmcall(nr: number, a0?: bigint, a1?: bigint, a2?: bigint, a3?: bigint): Promise<number>;
}
