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
import { validated, type Schema } from '../state-schema.ts';

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
export type CpuIdentity = Omit<CpuModel, 'name' | 'presentCpus' | 'possibleCpus' | 'cmdline'>;

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
  if (!cpuHas({ capabilities }, X86_FEATURE.ALWAYS))
    return err('boot_cpu_data lacks X86_FEATURE_ALWAYS: these are not the capability words of a booted 6.1 kernel');
  return ok({
    vendorId,
    vendor: bytes[1]!,
    family: bytes[0]!,
    model: bytes[2]!,
    stepping: bytes[3]!,
    modelId: cString(bytes.subarray(152, 216)),
    capabilities,
    physBits,
    virtBits,
  });
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

/**
 * `x86_vendor` for a CPUID vendor string, as get_cpu_vendor() finds it in the `c_ident`
 * strings of the vendors' cpu_dev (arch/x86/kernel/cpu/{intel,amd,hygon,centaur,zhaoxin,
 * cyrix,transmeta,umc,vortex}.c); X86_VENDOR_UNKNOWN (0xff) for any other string.
 */
export function vendorFromId(vendorId: string): number {
  return VENDOR_IDS.get(vendorId) ?? X86_VENDOR_UNKNOWN;
}

/** X86_VENDOR_UNKNOWN (arch/x86/include/asm/processor.h). */
export const X86_VENDOR_UNKNOWN = 0xff;

const VENDOR_IDS: ReadonlyMap<string, number> = new Map([
  ['GenuineIntel', X86_VENDOR.INTEL],
  ['CyrixInstead', X86_VENDOR.CYRIX],
  ['AuthenticAMD', X86_VENDOR.AMD],
  ['UMC UMC UMC ', X86_VENDOR.UMC],
  ['CentaurHauls', X86_VENDOR.CENTAUR],
  ['GenuineTMx86', X86_VENDOR.TRANSMETA],
  ['TransmetaCPU', X86_VENDOR.TRANSMETA],
  ['Geode by NSC', X86_VENDOR.NSC],
  ['HygonGenuine', X86_VENDOR.HYGON],
  ['  Shanghai  ', X86_VENDOR.ZHAOXIN],
  ['Vortex86 SoC', X86_VENDOR.VORTEX],
]);

/** Most vCPUs a VM has (hypervisor/core/vm-core.ts). */
export const MAX_MODEL_CPUS = 256;
/** COMMAND_LINE_SIZE of x86 (arch/x86/include/asm/setup.h), the terminating NUL included. */
export const COMMAND_LINE_SIZE = 2048;
/** Bytes of the CPUID brand string (leaves 0x80000002..4), the terminating NUL included. */
export const BRAND_STRING_BYTES = 48;

const PRINTABLE = /^[\x20-\x7e]*$/;

function isU(v: unknown, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
}

/**
 * Checks that `v` is a {@link CpuModel} a machine can boot and a vCPU can report through
 * CPUID; the error names the first field that is wrong. Used wherever a model crosses a
 * boundary: given to createMachine as an object, read from a snapshot or image, received
 * by the verifier.
 */
export function validateCpuModel(v: unknown): Result<CpuModel, string> {
  const x = v as Record<string, unknown> | null;
  if (typeof x !== 'object' || x === null) return err('the CPU model is not an object');
  if (typeof x.name !== 'string' || x.name === '') return err('CPU model: name must be a non-empty string');
  const where = `CPU model ${x.name}`;
  if (typeof x.vendorId !== 'string' || x.vendorId.length !== 12 || !PRINTABLE.test(x.vendorId))
    return err(`${where}: vendorId must be 12 printable ASCII characters (the CPUID vendor string)`);
  if (x.vendor !== vendorFromId(x.vendorId))
    return err(`${where}: vendor ${String(x.vendor)} is not the x86_vendor of "${x.vendorId}" (${vendorFromId(x.vendorId)})`);
  if (!isU(x.family, 0xff + 0xf)) return err(`${where}: family must be an integer 0..${0xff + 0xf} (base plus extended family)`);
  if (!isU(x.model, 0xff)) return err(`${where}: model must be an integer 0..255`);
  if (!isU(x.stepping, 0xf)) return err(`${where}: stepping must be an integer 0..15`);
  // x86_model() (arch/x86/lib/cpu.c) adds the extended model only from family 6 up.
  if (x.family < 6 && x.model > 0xf) return err(`${where}: model ${x.model} needs an extended model, which x86_model() adds only from family 6 up`);
  if (typeof x.modelId !== 'string' || x.modelId.length >= BRAND_STRING_BYTES || !PRINTABLE.test(x.modelId))
    return err(`${where}: modelId must be printable ASCII of at most ${BRAND_STRING_BYTES - 1} characters (the CPUID brand string)`);
  const caps = x.capabilities;
  if (!Array.isArray(caps) || caps.length !== CAPABILITY_WORDS || !caps.every((w) => isU(w, 0xffffffff)))
    return err(`${where}: capabilities must be ${CAPABILITY_WORDS} unsigned 32-bit words`);
  if (!cpuHas({ capabilities: caps as number[] }, X86_FEATURE.ALWAYS))
    return err(`${where}: capabilities lack X86_FEATURE_ALWAYS: these are not the words of a booted 6.1 kernel`);
  if (!isU(x.presentCpus, MAX_MODEL_CPUS) || x.presentCpus < 1) return err(`${where}: presentCpus must be an integer 1..${MAX_MODEL_CPUS}`);
  if (!isU(x.possibleCpus, MAX_MODEL_CPUS) || x.possibleCpus < x.presentCpus)
    return err(`${where}: possibleCpus must be an integer from presentCpus (${x.presentCpus}) to ${MAX_MODEL_CPUS}`);
  if (!isU(x.physBits, 52) || x.physBits < 32) return err(`${where}: physBits must be an integer 32..52`);
  if (x.virtBits !== 48 && x.virtBits !== 57) return err(`${where}: virtBits must be 48 or 57`);
  if (typeof x.cmdline !== 'string' || x.cmdline.length >= COMMAND_LINE_SIZE || !PRINTABLE.test(x.cmdline))
    return err(`${where}: cmdline must be printable ASCII of at most ${COMMAND_LINE_SIZE - 1} characters`);
  return ok({
    name: x.name,
    vendorId: x.vendorId,
    vendor: x.vendor,
    family: x.family,
    model: x.model,
    stepping: x.stepping,
    modelId: x.modelId,
    capabilities: [...(caps as number[])],
    presentCpus: x.presentCpus,
    possibleCpus: x.possibleCpus,
    physBits: x.physBits,
    virtBits: x.virtBits,
    cmdline: x.cmdline,
  });
}

/** A CPU model as a state-image field (shared/state-schema.ts): written as its fields, read back through {@link validateCpuModel}. */
export const CPU_MODEL_SCHEMA: Schema<CpuModel> = validated('a CPU model', validateCpuModel);
