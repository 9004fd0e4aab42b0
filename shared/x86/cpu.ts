/**
 * x86-64 architectural constants the guest and the core agree on: control-register bits,
 * MSR numbers, exception vectors. Values from the Intel SDM vol. 3A (2.5 "Control
 * Registers", 2.2.1 / table 2-2 "IA-32 Architectural MSRs") and Linux's
 * arch/x86/include/uapi/asm/processor-flags.h and asm/msr-index.h.
 */

/** CR0 bits (processor-flags.h: X86_CR0_*). */
export const CR0 = {
  PE: 1n << 0n,
  MP: 1n << 1n,
  EM: 1n << 2n,
  TS: 1n << 3n,
  ET: 1n << 4n,
  NE: 1n << 5n,
  WP: 1n << 16n,
  AM: 1n << 18n,
  NW: 1n << 29n,
  CD: 1n << 30n,
  PG: 1n << 31n,
} as const;

/** CR4 bits (processor-flags.h: X86_CR4_*). */
export const CR4 = {
  VME: 1n << 0n,
  PVI: 1n << 1n,
  TSD: 1n << 2n,
  DE: 1n << 3n,
  PSE: 1n << 4n,
  PAE: 1n << 5n,
  MCE: 1n << 6n,
  PGE: 1n << 7n,
  PCE: 1n << 8n,
  OSFXSR: 1n << 9n,
  OSXMMEXCPT: 1n << 10n,
  UMIP: 1n << 11n,
  LA57: 1n << 12n,
  VMXE: 1n << 13n,
  SMXE: 1n << 14n,
  FSGSBASE: 1n << 16n,
  PCIDE: 1n << 17n,
  OSXSAVE: 1n << 18n,
  SMEP: 1n << 20n,
  SMAP: 1n << 21n,
  PKE: 1n << 22n,
  CET: 1n << 23n,
} as const;

/** EFER bits (msr-index.h: EFER_*). */
export const EFER = {
  SCE: 1n << 0n,
  LME: 1n << 8n,
  LMA: 1n << 10n,
  NXE: 1n << 11n,
} as const;

/** MSR numbers (msr-index.h). */
export const MSR = {
  IA32_SYSENTER_CS: 0x174,
  IA32_SYSENTER_ESP: 0x175,
  IA32_SYSENTER_EIP: 0x176,
  IA32_PAT: 0x277,
  EFER: 0xc0000080,
  STAR: 0xc0000081,
  LSTAR: 0xc0000082,
  CSTAR: 0xc0000083,
  SYSCALL_MASK: 0xc0000084,
  FS_BASE: 0xc0000100,
  GS_BASE: 0xc0000101,
  KERNEL_GS_BASE: 0xc0000102,
} as const;

/** Names of the MSRs above, for messages and logs. */
export const MSR_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(MSR).map(([name, index]) => [index, name] as const));

/** A control register the guest can move to (CR2 is written by the CPU, CR8 is the TPR). */
export type ControlRegister = 0 | 3 | 4;

/** Exception vectors the core injects. */
export const VECTOR = {
  UD: 6,
  GP: 13,
  PF: 14,
} as const;

/**
 * Paging-structure entry bits of 4-level paging (SDM 4.5, Tables 4-15..4-20; Linux's
 * _PAGE_*): one definition for the guest's table writer, the vCPU's walk and the tests.
 * PS is the page-size bit of a PDPTE or PDE (PAT in a PTE); NX is XD, bit 63.
 */
export const PTE = {
  P: 1n << 0n,
  RW: 1n << 1n,
  US: 1n << 2n,
  PWT: 1n << 3n,
  PCD: 1n << 4n,
  A: 1n << 5n,
  D: 1n << 6n,
  PS: 1n << 7n,
  G: 1n << 8n,
  NX: 1n << 63n,
} as const;

/** Bits 51:12 of an entry: the physical address of the next table or of the 4 KiB page. */
export const PTE_ADDR_MASK = 0x000f_ffff_ffff_f000n;

/** Page-fault error-code bits (SDM 4.7). */
export const PF_ERR = {
  PRESENT: 1 << 0,
  WRITE: 1 << 1,
  USER: 1 << 2,
  RSVD: 1 << 3,
  FETCH: 1 << 4,
} as const;

/** Names the set bits of a CR value, e.g. `WP|PG`, for messages. */
export function crBitNames(cr: ControlRegister, value: bigint): string {
  const table: Record<string, bigint> = cr === 0 ? CR0 : cr === 4 ? CR4 : {};
  const names = Object.entries(table)
    .filter(([, bit]) => (value & bit) !== 0n)
    .map(([name]) => name);
  return names.length > 0 ? names.join('|') : `0x${value.toString(16)}`;
}
