/**
 * Names of the speculative-execution mitigation features of Linux 6.1.192
 * (arch/x86/include/asm/cpufeatures.h, word * 32 + bit): the synthetic bits
 * arch/x86/kernel/cpu/bugs.c sets when it chooses a mitigation for the CPU's bugs, and which
 * `.altinstructions` entries test. A CPU model carries them as the kernel computed them
 * (shared/x86/cpu-model.ts), so "the model has the mitigation" is `cpuHas(model, bit)`.
 *
 * The order is the security catalogue's preference when it picks a mitigation to attack
 * (guest/attacks/boot-touchups.ts): return thunks and retbleed/SRSO untraining first, then
 * retpolines, then the rest.
 */
import { cpuHas, type CpuModel } from './cpu-model.ts';

/** Mitigation feature numbers by their cpufeatures.h name (without `X86_FEATURE_`). */
export const MITIGATION_FEATURES = Object.freeze({
  RETHUNK: 11 * 32 + 14,
  UNRET: 11 * 32 + 15,
  SRSO: 11 * 32 + 24,
  SRSO_ALIAS: 11 * 32 + 25,
  RETPOLINE: 11 * 32 + 12,
  RETPOLINE_LFENCE: 11 * 32 + 13,
  INDIRECT_THUNK_ITS: 21 * 32 + 5,
  PTI: 7 * 32 + 11,
  CLEAR_CPU_BUF: 11 * 32 + 18,
  KERNEL_IBRS: 7 * 32 + 12,
  ENTRY_IBPB: 11 * 32 + 10,
  IBPB_ON_VMEXIT: 11 * 32 + 26,
  USE_IBPB: 7 * 32 + 21,
  USE_IBPB_FW: 11 * 32 + 16,
  USE_IBRS_FW: 7 * 32 + 22,
  RSB_CTXSW: 7 * 32 + 19,
  RSB_VMEXIT: 7 * 32 + 13,
  RSB_VMEXIT_LITE: 11 * 32 + 17,
  FENCE_SWAPGS_USER: 11 * 32 + 4,
  FENCE_SWAPGS_KERNEL: 11 * 32 + 5,
  SPEC_STORE_BYPASS_DISABLE: 7 * 32 + 23,
  LS_CFG_SSBD: 7 * 32 + 24,
  CLEAR_BHB_LOOP: 21 * 32 + 1,
  CLEAR_BHB_LOOP_ON_VMEXIT: 21 * 32 + 4,
  CLEAR_CPU_BUF_VM: 21 * 32 + 13,
  IBPB_EXIT_TO_USER: 21 * 32 + 14,
} as const);

/** A mitigation feature's name. */
export type MitigationFeature = keyof typeof MITIGATION_FEATURES;

/** Every mitigation feature, in the preference order above. */
export const MITIGATION_FEATURE_NAMES: readonly MitigationFeature[] = Object.freeze(Object.keys(MITIGATION_FEATURES) as MitigationFeature[]);

/** `X86_FEATURE_<name>` for messages. */
export function featureLabel(name: MitigationFeature): string {
  return `X86_FEATURE_${name}`;
}

/** Whether `model` has mitigation feature `name` (`boot_cpu_has(X86_FEATURE_<name>)`). */
export function hasMitigation(model: Pick<CpuModel, 'capabilities'>, name: MitigationFeature): boolean {
  return cpuHas(model, MITIGATION_FEATURES[name]);
}

/** The name of mitigation feature number `bit`, or undefined when it is none of them. */
export function mitigationName(bit: number): MitigationFeature | undefined {
  return MITIGATION_FEATURE_NAMES.find((n) => MITIGATION_FEATURES[n] === bit);
}
