/**
 * The CPUID leaves a vCPU answers, built by the VMM from its CPU model (as a VMM fills
 * KVM_SET_CPUID2) and read back by the guest (guest/kernel/cpu-detect.ts). One encoding, one
 * decoding, side by side, so the two cannot drift.
 *
 * Architectural leaves (Intel SDM vol. 2A, CPUID; AMD APM vol. 3, appendix E):
 * - 0: EAX the highest basic leaf (1), EBX-EDX-ECX the 12-byte vendor string.
 * - 1: EAX the signature: stepping 3:0, model 7:4, family 11:8, extended model 19:16,
 *   extended family 27:20 (family 0xf and up: base 0xf plus the extended family; model from
 *   family 6 up: extended model << 4 plus the base, as x86_family()/x86_model() in
 *   arch/x86/lib/cpu.c decode it). ECX and EDX: capability words 4 and 0, which are CPUID.1's
 *   ECX and EDX as the kernel kept them (cpufeatures.h).
 * - 0x80000000: EAX the highest extended leaf (0x80000008).
 * - 0x80000001: ECX and EDX: capability words 6 and 1.
 * - 0x80000002..4: the 48-byte brand string (`x86_model_id`), NUL-padded.
 * - 0x80000008: EAX 7:0 the physical address bits (MAXPHYADDR), 15:8 the linear ones.
 * - 0x40000000: KVM's signature leaf: EAX the highest KVM leaf (0x40000001), "KVMKVMKVM\0\0\0".
 *   On a Hyper-V machine (shared/hypervisor-kind.ts) the leaf is Hyper-V's instead: EAX the
 *   highest Hyper-V leaf (0x40000005), "Microsoft Hv" (shared/hv-vsm-abi.ts), and 0x40000001
 *   answers zeros, which is all the simulated guest reads of it.
 *
 * The simulator's paravirtual leaves, a second hypervisor interface at 0x40000100 (Linux
 * scans 0x40000000..0x4000ff00 in steps of 0x100 for interfaces: arch/x86/kernel/cpu/
 * hypervisor.c), docs/hypercalls.md:
 * - 0x40000100: EAX the highest leaf of the range, EBX-ECX-EDX "HekiSimCPUID".
 * - 0x40000101: EAX the number of capability words (24), EBX present CPUs, ECX possible
 *   CPUs, EDX the command line's length in bytes.
 * - 0x40000102 + i (i = 0..5): EAX..EDX capability words 4i..4i+3.
 * - 0x40000110 + j: bytes 16j..16j+15 of the command line in EAX..EDX (little-endian),
 *   NUL-padded; as many leaves as the length needs (at most 128: COMMAND_LINE_SIZE 2048).
 * These carry what a real kernel computes itself from CPUID, its bug tables and its command
 * line (arch/x86/kernel/cpu/common.c, bugs.c): the simulated guest does not re-run
 * arch/x86/kernel/cpu/, so the VMM hands it the words the real kernel computed on that CPU.
 * Any other leaf answers zeros (as AMD does for leaves past the highest).
 */
import { CAPABILITY_WORDS, COMMAND_LINE_SIZE, type CpuModel, vendorFromId } from './cpu-model.ts';
import { type Result, err, ok } from '../result.ts';
import type { HypervisorKind } from '../hypervisor-kind.ts';
import { HYPERV_CPUID_MAX_LEAF, HYPERV_CPUID_SIGNATURE } from '../hv-vsm-abi.ts';

/** What CPUID leaves in EAX, EBX, ECX and EDX (unsigned 32-bit). */
export interface CpuidRegs {
  readonly eax: number;
  readonly ebx: number;
  readonly ecx: number;
  readonly edx: number;
}

/** Leaf numbers. */
export const CPUID_LEAF = {
  BASIC_MAX: 0,
  SIGNATURE: 1,
  EXT_MAX: 0x80000000,
  EXT_FEATURES: 0x80000001,
  BRAND_0: 0x80000002,
  ADDRESS_SIZES: 0x80000008,
  KVM_SIGNATURE: 0x40000000,
  KVM_FEATURES: 0x40000001,
  HEKI_SIGNATURE: 0x40000100,
  HEKI_COUNTS: 0x40000101,
  HEKI_CAPS: 0x40000102,
  HEKI_CMDLINE: 0x40000110,
} as const;

/** "KVMKVMKVM\0\0\0" (arch/x86/include/uapi/asm/kvm_para.h KVM_SIGNATURE). */
export const KVM_CPUID_SIGNATURE = 'KVMKVMKVM\0\0\0';
/** The simulator's paravirtual CPUID interface's signature. */
export const HEKI_CPUID_SIGNATURE = 'HekiSimCPUID';

const ZERO: CpuidRegs = { eax: 0, ebx: 0, ecx: 0, edx: 0 };

/** `n` little-endian u32 of `bytes` from `off` (NUL past the end). */
function words(bytes: Uint8Array, off: number, n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let w = 0;
    for (let b = 3; b >= 0; b--) w = (w << 8) | (bytes[off + 4 * i + b] ?? 0);
    out.push(w >>> 0);
  }
  return out;
}

function ascii(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);
}

/** Registers from three words of a 12-byte signature in the order EBX, ECX, EDX. */
function signature(eax: number, sig: string, order: 'bcd' | 'bdc'): CpuidRegs {
  const [a, b, c] = words(ascii(sig), 0, 3) as [number, number, number];
  return order === 'bcd' ? { eax, ebx: a, ecx: b, edx: c } : { eax, ebx: a, edx: b, ecx: c };
}

/** The leaf-1 EAX signature of family/model/stepping, with extended family and model. */
export function encodeSignature(family: number, model: number, stepping: number): number {
  const baseFamily = family >= 0xf ? 0xf : family;
  const extFamily = family >= 0xf ? family - 0xf : 0;
  const baseModel = model & 0xf;
  const extModel = family >= 6 ? model >> 4 : 0;
  return ((extFamily << 20) | (extModel << 16) | (baseFamily << 8) | (baseModel << 4) | (stepping & 0xf)) >>> 0;
}

/** Family, model and stepping of a leaf-1 signature (x86_family, x86_model, x86_stepping). */
export function decodeSignature(sig: number): { family: number; model: number; stepping: number } {
  let family = (sig >>> 8) & 0xf;
  if (family === 0xf) family += (sig >>> 20) & 0xff;
  let model = (sig >>> 4) & 0xf;
  if (family >= 6) model += ((sig >>> 16) & 0xf) << 4;
  return { family, model, stepping: sig & 0xf };
}

/**
 * Every leaf the vCPU answers for `model` with `presentCpus` CPUs present now (the VMM
 * raises it on a hotplug), keyed by leaf number (no leaf here has subleaves).
 */
export function cpuidTable(model: CpuModel, presentCpus: number = model.presentCpus, hypervisor: HypervisorKind = 'kvm'): ReadonlyMap<number, CpuidRegs> {
  const t = new Map<number, CpuidRegs>();
  const caps = model.capabilities;
  const cmd = ascii(model.cmdline);
  const cmdLeaves = Math.ceil(cmd.length / 16);
  t.set(CPUID_LEAF.BASIC_MAX, signature(CPUID_LEAF.SIGNATURE, model.vendorId, 'bdc'));
  t.set(CPUID_LEAF.SIGNATURE, { eax: encodeSignature(model.family, model.model, model.stepping), ebx: 0, ecx: caps[4]!, edx: caps[0]! });
  t.set(CPUID_LEAF.EXT_MAX, { ...ZERO, eax: CPUID_LEAF.ADDRESS_SIZES });
  t.set(CPUID_LEAF.EXT_FEATURES, { eax: 0, ebx: 0, ecx: caps[6]!, edx: caps[1]! });
  const brand = ascii(model.modelId);
  for (let i = 0; i < 3; i++) {
    const [eax, ebx, ecx, edx] = words(brand, 16 * i, 4) as [number, number, number, number];
    t.set(CPUID_LEAF.BRAND_0 + i, { eax, ebx, ecx, edx });
  }
  t.set(CPUID_LEAF.ADDRESS_SIZES, { ...ZERO, eax: (model.virtBits << 8) | model.physBits });
  t.set(
    CPUID_LEAF.KVM_SIGNATURE,
    hypervisor === 'hyperv' ? signature(HYPERV_CPUID_MAX_LEAF, HYPERV_CPUID_SIGNATURE, 'bcd') : signature(CPUID_LEAF.KVM_FEATURES, KVM_CPUID_SIGNATURE, 'bcd'),
  );
  t.set(CPUID_LEAF.KVM_FEATURES, ZERO);
  t.set(CPUID_LEAF.HEKI_SIGNATURE, signature(CPUID_LEAF.HEKI_CMDLINE + Math.max(cmdLeaves, 1) - 1, HEKI_CPUID_SIGNATURE, 'bcd'));
  t.set(CPUID_LEAF.HEKI_COUNTS, { eax: CAPABILITY_WORDS, ebx: presentCpus, ecx: model.possibleCpus, edx: cmd.length });
  for (let i = 0; i < CAPABILITY_WORDS / 4; i++) {
    t.set(CPUID_LEAF.HEKI_CAPS + i, { eax: caps[4 * i]!, ebx: caps[4 * i + 1]!, ecx: caps[4 * i + 2]!, edx: caps[4 * i + 3]! });
  }
  for (let j = 0; j < Math.max(cmdLeaves, 1); j++) {
    const [eax, ebx, ecx, edx] = words(cmd, 16 * j, 4) as [number, number, number, number];
    t.set(CPUID_LEAF.HEKI_CMDLINE + j, { eax, ebx, ecx, edx });
  }
  return t;
}

/**
 * The 12-byte hypervisor signature of a 0x40000000 answer, EBX-ECX-EDX (how Linux reads it:
 * arch/x86/kernel/kvm.c kvm_cpuid_base(), arch/x86/kernel/cpu/mshyperv.c ms_hyperv_platform()).
 */
export function hypervisorSignature(regs: CpuidRegs): string {
  let s = '';
  for (const w of [regs.ebx, regs.ecx, regs.edx]) for (let b = 0; b < 4; b++) s += String.fromCharCode((w >>> (8 * b)) & 0xff);
  return s;
}

/** A leaf of `table`, zeros for one it does not hold. */
export function cpuidLookup(table: ReadonlyMap<number, CpuidRegs>, leaf: number): CpuidRegs {
  return table.get(leaf >>> 0) ?? ZERO;
}

/** The model as CPUID shows it: every field but the name. */
export type CpuView = Omit<CpuModel, 'name'>;

function text(regs: readonly number[]): string {
  let s = '';
  for (const w of regs) for (let b = 0; b < 4; b++) s += String.fromCharCode((w >>> (8 * b)) & 0xff);
  return s;
}

/**
 * Reads the model back through `cpuid`, as the guest's boot does; the error names the leaf
 * that is missing or inconsistent (a VMM that does not offer the simulator's leaves).
 */
export function decodeCpuid(cpuid: (leaf: number, subleaf: number) => CpuidRegs): Result<CpuView, string> {
  const l0 = cpuid(CPUID_LEAF.BASIC_MAX, 0);
  if (l0.eax < CPUID_LEAF.SIGNATURE) return err(`CPUID leaf 0 says the highest basic leaf is ${l0.eax}; leaf 1 is needed`);
  const vendorId = text([l0.ebx, l0.edx, l0.ecx]);
  const sig = decodeSignature(cpuid(CPUID_LEAF.SIGNATURE, 0).eax);
  const ext = cpuid(CPUID_LEAF.EXT_MAX, 0).eax >>> 0;
  if (ext < CPUID_LEAF.ADDRESS_SIZES) return err(`CPUID leaf 0x80000000 says the highest extended leaf is 0x${ext.toString(16)}; 0x80000008 is needed`);
  let brand = '';
  for (let i = 0; i < 3; i++) {
    const r = cpuid(CPUID_LEAF.BRAND_0 + i, 0);
    brand += text([r.eax, r.ebx, r.ecx, r.edx]);
  }
  const nul = brand.indexOf('\0');
  const modelId = nul < 0 ? brand : brand.slice(0, nul);
  const sizes = cpuid(CPUID_LEAF.ADDRESS_SIZES, 0).eax;
  const pv = cpuid(CPUID_LEAF.HEKI_SIGNATURE, 0);
  if (text([pv.ebx, pv.ecx, pv.edx]) !== HEKI_CPUID_SIGNATURE)
    return err(`CPUID leaf 0x40000100 lacks the "${HEKI_CPUID_SIGNATURE}" signature: the VMM offers no capability words`);
  const counts = cpuid(CPUID_LEAF.HEKI_COUNTS, 0);
  if (counts.eax !== CAPABILITY_WORDS) return err(`CPUID leaf 0x40000101 gives ${counts.eax} capability words; this kernel has ${CAPABILITY_WORDS}`);
  if (counts.ebx < 1 || counts.ecx < counts.ebx) return err(`CPUID leaf 0x40000101 gives ${counts.ebx} present and ${counts.ecx} possible CPUs`);
  if (counts.edx >= COMMAND_LINE_SIZE) return err(`CPUID leaf 0x40000101 gives a ${counts.edx}-byte command line; COMMAND_LINE_SIZE is ${COMMAND_LINE_SIZE}`);
  const leaves = Math.ceil(counts.edx / 16);
  if (leaves > 0 && pv.eax >>> 0 < CPUID_LEAF.HEKI_CMDLINE + leaves - 1)
    return err(`CPUID leaf 0x40000100's highest leaf 0x${(pv.eax >>> 0).toString(16)} does not cover the command line`);
  const capabilities: number[] = [];
  for (let i = 0; i < CAPABILITY_WORDS / 4; i++) {
    const r = cpuid(CPUID_LEAF.HEKI_CAPS + i, 0);
    capabilities.push(r.eax >>> 0, r.ebx >>> 0, r.ecx >>> 0, r.edx >>> 0);
  }
  let cmd = '';
  for (let j = 0; j < leaves; j++) {
    const r = cpuid(CPUID_LEAF.HEKI_CMDLINE + j, 0);
    cmd += text([r.eax, r.ebx, r.ecx, r.edx]);
  }
  return ok({
    vendorId,
    vendor: vendorFromId(vendorId),
    ...sig,
    modelId,
    capabilities,
    presentCpus: counts.ebx,
    possibleCpus: counts.ecx,
    physBits: sizes & 0xff,
    virtBits: (sizes >>> 8) & 0xff,
    cmdline: cmd.slice(0, counts.edx),
  });
}
