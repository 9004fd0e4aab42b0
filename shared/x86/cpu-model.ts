/**
 * The CPU model a machine boots with, owned by the VMM: what the guest learns through its
 * vCPU (CPUID-shaped) and what the verifier is given by the VMM (never by the guest) to
 * predict the kernel's boot-time text touch-ups.
 *
 * The capability words are the ones Linux 6.1.192 itself computes on that CPU
 * (`boot_cpu_data.x86_capability[NCAPINTS + NBUGINTS]`, 22 + 2 u32 words), synthetic
 * features such as RETPOLINE, RETHUNK, UNRET and ALWAYS included: these are what
 * `boot_cpu_has()` and the alternatives test (arch/x86/kernel/alternative.c), so a model
 * carries them as the kernel computed them instead of re-deriving arch/x86/kernel/cpu/.
 *
 * Layout of `struct cpuinfo_x86` (arch/x86/include/asm/processor.h, CONFIG_X86_64 and
 * CONFIG_X86_VMX_FEATURE_NAMES as in the Debian config): x86 (family) u8 at 0, x86_vendor u8
 * at 1, x86_model u8 at 2, x86_stepping u8 at 3, x86_tlbsize s32 at 4, vmx_capability[5] at 8,
 * x86_virt_bits u8 at 28, x86_phys_bits u8 at 29, x86_coreid_bits at 30, cu_id at 31,
 * extended_cpuid_level u32 at 32, cpuid_level s32 at 36, x86_capability[24] at 40,
 * x86_vendor_id[16] at 136, x86_model_id[64] at 152.
 */
import { type Result, err, ok } from '../result.ts';

/** NCAPINTS + NBUGINTS of Linux 6.1 (arch/x86/include/asm/cpufeatures.h). */
export const CAPABILITY_WORDS = 24;
/** NCAPINTS: the bug words start at word 22 (X86_BUG(x) = NCAPINTS*32 + x). */
export const NCAPINTS = 22;
/** Bytes of `struct cpuinfo_x86` a model is decoded from (the references dump 1 KiB). */
export const CPUINFO_MIN_BYTES = 216;

/** `x86_vendor` values (arch/x86/include/asm/processor.h X86_VENDOR_*). */
export const X86_VENDOR = { INTEL: 0, CYRIX: 1, AMD: 2, UMC: 3, CENTAUR: 5, TRANSMETA: 7, NSC: 8, HYGON: 9, ZHAOXIN: 10, VORTEX: 11 } as const;

/**
 * Feature and bug numbers of 6.1.192's cpufeatures.h that the boot touch-ups test by name
 * (word * 32 + bit). Alternatives test the raw number from `.altinstructions`.
 */
export const X86_FEATURE = {
  UP: 3 * 32 + 9,
  ALWAYS: 3 * 32 + 21,
  HYPERVISOR: 4 * 32 + 31,
  XENPV: 8 * 32 + 16,
  RETPOLINE: 11 * 32 + 12,
  RETPOLINE_LFENCE: 11 * 32 + 13,
  RETHUNK: 11 * 32 + 14,
  UNRET: 11 * 32 + 15,
  SRSO: 11 * 32 + 24,
  SRSO_ALIAS: 11 * 32 + 25,
  INDIRECT_THUNK_ITS: 21 * 32 + 5,
} as const;

/** Bug numbers (X86_BUG(x) = NCAPINTS * 32 + x). */
export const X86_BUG = {
  SRSO: NCAPINTS * 32 + 32 + 0,
  ITS: NCAPINTS * 32 + 32 + 5,
} as const;

/** A CPU model: identity, the kernel's capability words, CPUs, address bits, command line. */
export interface CpuModel {
  /** The name users give it (`skylake-smp2`), or the folder it was read from. */
  readonly name: string;
  /** `x86_vendor_id`, e.g. `GenuineIntel`, `AuthenticAMD`. */
  readonly vendorId: string;
  /** `x86_vendor` (X86_VENDOR_*). */
  readonly vendor: number;
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  /** `x86_model_id`, the brand string. */
  readonly modelId: string;
  /** `x86_capability[24]` as the kernel computed it on this CPU. */
  readonly capabilities: readonly number[];
  /** CPUs present at boot (`num_present_cpus()`). */
  readonly presentCpus: number;
  /** CPUs possible (`num_possible_cpus()`): at least `presentCpus`; more allow CPU hotplug. */
  readonly possibleCpus: number;
  /** MAXPHYADDR (`x86_phys_bits`). */
  readonly physBits: number;
  /** Linear-address bits (`x86_virt_bits`). */
  readonly virtBits: number;
  /** The kernel command line the model boots with. */
  readonly cmdline: string;
}

/** Whether the model has feature or bug number `bit` (boot_cpu_has). */
export function cpuHas(model: Pick<CpuModel, 'capabilities'>, bit: number): boolean {
  const word = bit >>> 5;
  if (word >= model.capabilities.length) return false;
  return ((model.capabilities[word]! >>> (bit & 31)) & 1) === 1;
}

/** The part of a model read from `struct cpuinfo_x86`. */
export interface CpuIdentity {
  readonly vendorId: string;
  readonly vendor: number;
  readonly family: number;
  readonly model: number;
  readonly stepping: number;
  readonly modelId: string;
  readonly capabilities: readonly number[];
  readonly physBits: number;
  readonly virtBits: number;
}

function cString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  const raw = end < 0 ? bytes : bytes.subarray(0, end);
  let s = '';
  for (const c of raw) s += c >= 0x20 && c < 0x7f ? String.fromCharCode(c) : '?';
  return s;
}

/**
 * Decodes the identity part of a model from the bytes of `struct cpuinfo_x86` (a reference's
 * `boot_cpu_data.bin`); an error names what is wrong.
 */
export function decodeCpuinfo(bytes: Uint8Array): Result<CpuIdentity, string> {
  if (bytes.length < CPUINFO_MIN_BYTES) return err(`boot_cpu_data is ${bytes.length} bytes; struct cpuinfo_x86 needs at least ${CPUINFO_MIN_BYTES}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const capabilities: number[] = [];
  for (let i = 0; i < CAPABILITY_WORDS; i++) capabilities.push(dv.getUint32(40 + 4 * i, true));
  const physBits = bytes[29]!;
  const virtBits = bytes[28]!;
  if (physBits < 32 || physBits > 52) return err(`boot_cpu_data gives x86_phys_bits ${physBits}; a 64-bit CPU has 32 to 52`);
  if (virtBits !== 48 && virtBits !== 57) return err(`boot_cpu_data gives x86_virt_bits ${virtBits}; expected 48 or 57`);
  const vendorId = cString(bytes.subarray(136, 152));
  if (vendorId.length === 0) return err('boot_cpu_data has an empty x86_vendor_id');
  if (!cpuHas({ capabilities }, X86_FEATURE.ALWAYS)) return err('boot_cpu_data lacks X86_FEATURE_ALWAYS: these are not the capability words of a booted 6.1 kernel');
  return ok({ vendorId, vendor: bytes[1]!, family: bytes[0]!, model: bytes[2]!, stepping: bytes[3]!, modelId: cString(bytes.subarray(152, 216)), capabilities, physBits, virtBits });
}

/**
 * The return thunk `x86_return_thunk` points at, as arch/x86/kernel/cpu/bugs.c leaves it:
 * retbleed's untrained return (UNRET), then SRSO's (SRSO, SRSO_ALIAS), then ITS's aligned
 * thunk, each `set_return_thunk()` replacing the one before; otherwise `__x86_return_thunk`.
 * Returns the symbol name.
 */
export function returnThunkName(model: Pick<CpuModel, 'capabilities'>): string {
  let thunk = '__x86_return_thunk';
  if (cpuHas(model, X86_FEATURE.UNRET)) thunk = 'retbleed_return_thunk';
  if (cpuHas(model, X86_FEATURE.SRSO_ALIAS)) thunk = 'srso_alias_return_thunk';
  else if (cpuHas(model, X86_FEATURE.SRSO)) thunk = 'srso_return_thunk';
  if (cpuHas(model, X86_BUG.ITS) && cpuHas(model, X86_FEATURE.RETHUNK) && !cpuHas(model, X86_FEATURE.UNRET)) thunk = 'its_return_thunk';
  return thunk;
}
