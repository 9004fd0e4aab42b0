/**
 * The LVBS VTL-call ABI: how a normal kernel in VTL0 asks the secure kernel in VTL1 of
 * Hyper-V's Virtual Secure Mode for Heki's protections. The guest's VSM backend
 * (guest/heki/vsm-backend.ts) and the core's Hyper-V personality (hypervisor/hyperv/) agree on
 * these numbers; docs/hypervisors.md sets them beside the KVM ABI of shared/abi.ts.
 *
 * Sources (cited per constant below):
 * - [hv_vsm.h] microsoft/litebox litebox_platform_lvbs/src/mshv/hv_vsm.h ("originated from
 *   lsg-linux-origin/project/lvbs/6.6"), the VTL0 kernel's header.
 * - [mod.rs] microsoft/litebox litebox_platform_lvbs/src/mshv/mod.rs (the VTL1 side's
 *   hypercall codes, register names, page-protection flags, CR pin masks).
 * - [vsm.rs] microsoft/litebox litebox_platform_lvbs/src/mshv/vsm.rs (`vsm_dispatch()`: what
 *   each function takes and returns).
 * - [hv_vsm.c] heki-linux/lvbs-linux drivers/hv/hv_vsm.c and hv_vtlcall.S (the VTL0 caller:
 *   a0..a3 in RDI, RSI, RDX, R8; the result read back from a3).
 * - [tlfs] Linux 6.1 include/asm-generic/hyperv-tlfs.h (hypercall statuses) and the
 *   Hyper-V TLFS (hypercall codes 0x0C, 0x11, 0x12).
 */
import { CR0, CR4 } from './x86/cpu.ts';

/**
 * Hyper-V hypercall codes (the low 16 bits of the hypercall input value in RCX).
 * [mod.rs] `HVCALL_MODIFY_VTL_PROTECTION_MASK: u16 = 0x000c`; [hv_vtlcall.S] "The Function ID
 * for VTLCALL is 0x11" (`mov $0x11, %rcx`); litebox's VTL0 caller `HVCALL_VTL_CALL: u16 =
 * 0x0011`; KVM's Hyper-V emulation (arch/x86/kvm/hyperv.c, VSM series) `HVCALL_VTL_RETURN` 0x12.
 */
export const HVCALL = {
  /** HvCallModifyVtlProtectionMask: a higher VTL sets a lower VTL's access to guest pages. */
  MODIFY_VTL_PROTECTION_MASK: 0x000c,
  /** HvCallVtlCall: VTL0 enters VTL1 (the secure kernel) with a0..a3. */
  VTL_CALL: 0x0011,
  /** HvCallVtlReturn: VTL1 returns to VTL0. Only VTL1 may issue it. */
  VTL_RETURN: 0x0012,
} as const;

/** A Hyper-V hypercall code the personality knows. */
export type HvCallCode = (typeof HVCALL)[keyof typeof HVCALL];

/** Names of the hypercall codes, for logs. */
export const HVCALL_NAMES: Readonly<Record<HvCallCode, string>> = {
  [HVCALL.MODIFY_VTL_PROTECTION_MASK]: 'HvCallModifyVtlProtectionMask',
  [HVCALL.VTL_CALL]: 'HvCallVtlCall',
  [HVCALL.VTL_RETURN]: 'HvCallVtlReturn',
};

/**
 * Hyper-V hypercall statuses ([tlfs]: include/asm-generic/hyperv-tlfs.h `HV_STATUS_*`). The
 * hypercall itself returns one of these; a VTL call that reached VTL1 returns VTL1's answer
 * in a3 instead (see {@link VSM_ERRNO}).
 */
export const HV_STATUS = {
  SUCCESS: 0,
  INVALID_HYPERCALL_CODE: 2,
  INVALID_HYPERCALL_INPUT: 3,
  INVALID_ALIGNMENT: 4,
  INVALID_PARAMETER: 5,
  ACCESS_DENIED: 6,
  OPERATION_DENIED: 8,
  INSUFFICIENT_MEMORY: 11,
} as const;

/** Names a Hyper-V status: `HV_STATUS_ACCESS_DENIED`, or the number. */
export function hvStatusName(status: number): string {
  for (const [name, code] of Object.entries(HV_STATUS)) if (status === code) return `HV_STATUS_${name}`;
  return String(status);
}

/**
 * VSM function IDs, a0 of a VTL call ([hv_vsm.h] `VSM_VTL_CALL_FUNC_ID_*`; the same values in
 * litebox_common_lvbs, which adds PATCH_TEXT 0x1FFEB, see {@link VSM_FUNC_PATCH_TEXT}).
 */
export const VSM_FUNC = {
  ENABLE_APS_VTL: 0x1ffe0,
  BOOT_APS: 0x1ffe1,
  LOCK_REGS: 0x1ffe2,
  SIGNAL_END_OF_BOOT: 0x1ffe3,
  PROTECT_MEMORY: 0x1ffe4,
  LOAD_KDATA: 0x1ffe5,
  VALIDATE_MODULE: 0x1ffe6,
  FREE_MODULE_INIT: 0x1ffe7,
  UNLOAD_MODULE: 0x1ffe8,
  COPY_SECONDARY_KEY: 0x1ffe9,
  KEXEC_VALIDATE: 0x1ffea,
} as const;

/** A VSM function ID of the 0x1FFE0..0x1FFEA range. */
export type VsmFunctionId = (typeof VSM_FUNC)[keyof typeof VSM_FUNC];

/**
 * litebox's later `VSM_VTL_CALL_FUNC_ID_PATCH_TEXT` (0x1FFEB): one `HekiPatch` (a target
 * split over at most two physical pages, at most 5 bytes) checked against patch data the
 * kernel precomputed and handed over with LOAD_KDATA (`HekiPatchType::JumpLabel` is the only
 * type). It is outside the range this personality implements and answers -EINVAL, as
 * `vsm_dispatch()` does for an unknown ID.
 */
export const VSM_FUNC_PATCH_TEXT = 0x1ffeb;

/** Name of each function ID, for logs and reports. */
export const VSM_FUNC_NAMES: Readonly<Record<VsmFunctionId, string>> = {
  [VSM_FUNC.ENABLE_APS_VTL]: 'VSM_VTL_CALL_FUNC_ID_ENABLE_APS_VTL',
  [VSM_FUNC.BOOT_APS]: 'VSM_VTL_CALL_FUNC_ID_BOOT_APS',
  [VSM_FUNC.LOCK_REGS]: 'VSM_VTL_CALL_FUNC_ID_LOCK_REGS',
  [VSM_FUNC.SIGNAL_END_OF_BOOT]: 'VSM_VTL_CALL_FUNC_ID_SIGNAL_END_OF_BOOT',
  [VSM_FUNC.PROTECT_MEMORY]: 'VSM_VTL_CALL_FUNC_ID_PROTECT_MEMORY',
  [VSM_FUNC.LOAD_KDATA]: 'VSM_VTL_CALL_FUNC_ID_LOAD_KDATA',
  [VSM_FUNC.VALIDATE_MODULE]: 'VSM_VTL_CALL_FUNC_ID_VALIDATE_MODULE',
  [VSM_FUNC.FREE_MODULE_INIT]: 'VSM_VTL_CALL_FUNC_ID_FREE_MODULE_INIT',
  [VSM_FUNC.UNLOAD_MODULE]: 'VSM_VTL_CALL_FUNC_ID_UNLOAD_MODULE',
  [VSM_FUNC.COPY_SECONDARY_KEY]: 'VSM_VTL_CALL_FUNC_ID_COPY_SECONDARY_KEY',
  [VSM_FUNC.KEXEC_VALIDATE]: 'VSM_VTL_CALL_FUNC_ID_KEXEC_VALIDATE',
};

/** True when `id` is a function ID of the 0x1FFE0..0x1FFEA range. */
export function isVsmFunctionId(id: bigint): boolean {
  return id >= BigInt(VSM_FUNC.ENABLE_APS_VTL) && id <= BigInt(VSM_FUNC.KEXEC_VALIDATE);
}

/**
 * `struct hv_vtlcall_param { u64 a0, a1, a2, a3; }` ([hv_vsm.h]): a0 the function ID, a1..a3
 * its arguments. [hv_vtlcall.S] passes them in RDI, RSI, RDX and R8 (RCX carries the
 * hypercall code) and copies the four registers back after the call; [hv_vsm.c]
 * `hv_vsm_vtlcall()` returns `(int)args->a3`: VTL1's answer is in a3.
 */
export interface HvVtlCallParam {
  readonly a0: bigint;
  readonly a1: bigint;
  readonly a2: bigint;
  readonly a3: bigint;
}

/**
 * VTL1's answers are negated Linux errnos ([vsm.rs] `vsm_dispatch()`: `Err(errno) =>
 * errno.as_neg()`), 0 or a token on success. The ones LVBS uses (include/uapi/asm-generic/
 * errno-base.h, errno.h).
 */
export const VSM_ERRNO = {
  EPERM: 1,
  ENOENT: 2,
  E2BIG: 7,
  EAGAIN: 11,
  ENOMEM: 12,
  EFAULT: 14,
  EINVAL: 22,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
} as const;

/** Names a VTL-call answer: `0`, `-EINVAL`, or the number (a module token is positive). */
export function vsmResultName(ret: number): string {
  if (ret >= 0) return String(ret);
  for (const [name, code] of Object.entries(VSM_ERRNO)) if (ret === -code) return `-${name}`;
  return String(ret);
}

/**
 * Page access bits of HvCallModifyVtlProtectionMask ([hv_vsm.h] `HV_PAGE_*`, [mod.rs]
 * `HvPageProtFlags`). With MBEC the two execute bits are separate: kernel (supervisor) and
 * user execute.
 */
export const HV_PAGE = {
  ACCESS_NONE: 0x0,
  READABLE: 0x1,
  WRITABLE: 0x2,
  KERNEL_EXECUTABLE: 0x4,
  USER_EXECUTABLE: 0x8,
} as const;
/** `HV_PAGE_EXECUTABLE` = KERNEL_EXECUTABLE | USER_EXECUTABLE ([hv_vsm.h]). */
export const HV_PAGE_EXECUTABLE = HV_PAGE.KERNEL_EXECUTABLE | HV_PAGE.USER_EXECUTABLE;
/** `HV_PAGE_FULL_ACCESS` = READABLE | WRITABLE | EXECUTABLE ([hv_vsm.h]); VTL0's default mask. */
export const HV_PAGE_FULL_ACCESS = HV_PAGE.READABLE | HV_PAGE.WRITABLE | HV_PAGE_EXECUTABLE;

/**
 * CR0 bits LOCK_REGS pins ([hv_vsm.h] `CR0_PIN_MASK (X86_CR0_PE | X86_CR0_WP | X86_CR0_PG)`).
 * Wider than Heki's (CR0.WP only, shared/abi.ts PINNABLE).
 */
export const CR0_PIN_MASK = CR0.PE | CR0.WP | CR0.PG;

/**
 * CR4 bits LOCK_REGS pins: every bit but MCE, PGE, PCE and VMXE ([hv_vsm.h] `CR4_PIN_MASK
 * ~(X86_CR4_MCE | X86_CR4_PGE | X86_CR4_PCE | X86_CR4_VMXE)`). [mod.rs] computes it on a u32
 * (`X86Cr4Flags: u32`) and writes it to HV_REGISTER_CR_INTERCEPT_CR4_MASK zero-extended: bits
 * 32..63 are not in the mask.
 */
export const CR4_PIN_MASK = 0xffff_ffffn & ~(CR4.MCE | CR4.PGE | CR4.PCE | CR4.VMXE);

/**
 * Registers LOCK_REGS locks besides CR0/CR4: [vsm.rs] `mshv_vsm_lock_regs()` sets
 * HV_REGISTER_CR_INTERCEPT_CONTROL with these write intercepts ([mod.rs]
 * `HvCrInterceptControlFlags`), and saves their values (`ControlRegMap`, 11 registers).
 */
export const HV_CR_INTERCEPT = {
  CR0_WRITE: 1n << 0n,
  CR4_WRITE: 1n << 1n,
  MSR_LSTAR_WRITE: 1n << 6n,
  MSR_STAR_WRITE: 1n << 8n,
  MSR_CSTAR_WRITE: 1n << 10n,
  MSR_APIC_BASE_WRITE: 1n << 12n,
  MSR_EFER_WRITE: 1n << 14n,
  GDTR_WRITE: 1n << 15n,
  IDTR_WRITE: 1n << 16n,
  LDTR_WRITE: 1n << 17n,
  TR_WRITE: 1n << 18n,
  MSR_SYSENTER_CS_WRITE: 1n << 19n,
  MSR_SYSENTER_EIP_WRITE: 1n << 20n,
  MSR_SYSENTER_ESP_WRITE: 1n << 21n,
  MSR_SFMASK_WRITE: 1n << 22n,
} as const;

/** The intercept-control value LOCK_REGS writes: every bit of {@link HV_CR_INTERCEPT}. */
export const LOCK_REGS_INTERCEPTS = Object.values(HV_CR_INTERCEPT).reduce((a, b) => a | b, 0n);

/** CPUID 0x40000000 signature of Hyper-V, "Microsoft Hv" (arch/x86/kernel/cpu/mshyperv.c ms_hyperv_platform()). */
export const HYPERV_CPUID_SIGNATURE = 'Microsoft Hv';
/** Highest Hyper-V leaf the personality answers: 0x40000005 (HYPERV_CPUID_IMPLEMENT_LIMITS, [mod.rs]). */
export const HYPERV_CPUID_MAX_LEAF = 0x40000005;
