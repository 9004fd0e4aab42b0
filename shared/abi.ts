/**
 * The Heki hypercall ABI, as the guest and the core agree on it.
 *
 * Numbers and layouts follow the Heki RFC v2 (Nov 2023) and v3 (May 2024) patch series:
 * include/uapi/linux/kvm_para.h gains `KVM_HC_LOCK_CR_UPDATE` (13) and
 * `KVM_HC_PROTECT_MEMORY` (14); memory attributes are `MEM_ATTR_READ/WRITE/EXEC/IMMUTABLE`
 * (bits 0..3). Status codes are the ones KVM returns in RAX (kvm_para.h: `KVM_ENOSYS` 1000,
 * the rest are errno values). docs/hypercalls.md documents each call in KVM's template.
 */
import { CR0, CR4 } from './x86/cpu.ts';

/** Version of this ABI, returned by LOCK_CR_UPDATE with {@link HEKI_LOCK_CR_FLAG_ABI_VERSION}. */
export const HEKI_ABI_VERSION = 1;

/** Hypercall numbers (RAX on `vmcall`). */
export const HC = {
  /**
   * Tell the host that guest-physical pages became shared (decrypted) or private (encrypted):
   * KVM's `KVM_HC_MAP_GPA_RANGE` (include/uapi/linux/kvm_para.h, Linux 5.14). Here it drives
   * the protected-memory mode: private pages are invisible to the VMM.
   */
  MAP_GPA_RANGE: 12,
  /** Pin bits of a control register (Heki v3: `KVM_HC_LOCK_CR_UPDATE`). */
  LOCK_CR_UPDATE: 13,
  /** Set EPT attributes of guest-physical ranges (Heki v2: `KVM_HC_PROTECT_MEMORY`). */
  PROTECT_MEMORY: 14,
  /** heki-sim: end of boot; the verifier checks the booted text against the manifest. */
  HEKI_END_BOOT: 15,
  /** heki-sim: authenticate a loaded module and grant its sections' permissions. */
  HEKI_LOAD_MODULE: 16,
  /** heki-sim: unload a module; its pages return to data-only. */
  HEKI_UNLOAD_MODULE: 17,
  /** heki-sim: a batch of authenticated text patches (ftrace, jump labels, static calls, kprobes). */
  HEKI_TEXT_PATCH: 18,
  /** heki-sim: an authenticated permission change after boot (set_memory_*). */
  HEKI_SET_MEMORY: 19,
  /** heki-sim: authenticate a signed code image (eBPF JIT, trampoline) and make it executable. */
  HEKI_LOAD_CODE: 20,
  /** heki-sim: load a kexec (or crash) kernel with its signed manifest, like kexec_file_load. */
  HEKI_KEXEC_LOAD: 21,
  /** heki-sim: run the loaded kexec kernel (reboot(LINUX_REBOOT_CMD_KEXEC)); the VMM resets the VM into it. */
  HEKI_KEXEC: 22,
  /**
   * heki-sim: a module's init returned (do_init_module): its init layout leaves the module
   * (data-only, out of the trusted code map) and its ro_after_init data is sealed.
   */
  HEKI_FREE_MODULE_INIT: 23,
} as const;

/** A hypercall number the core knows. */
export type HypercallNr = (typeof HC)[keyof typeof HC];

/** Name of each known hypercall, for logs and exits. */
export const HC_NAMES: Readonly<Record<HypercallNr, string>> = {
  [HC.MAP_GPA_RANGE]: 'KVM_HC_MAP_GPA_RANGE',
  [HC.LOCK_CR_UPDATE]: 'KVM_HC_LOCK_CR_UPDATE',
  [HC.PROTECT_MEMORY]: 'KVM_HC_PROTECT_MEMORY',
  [HC.HEKI_END_BOOT]: 'KVM_HC_HEKI_END_BOOT',
  [HC.HEKI_LOAD_MODULE]: 'KVM_HC_HEKI_LOAD_MODULE',
  [HC.HEKI_UNLOAD_MODULE]: 'KVM_HC_HEKI_UNLOAD_MODULE',
  [HC.HEKI_TEXT_PATCH]: 'KVM_HC_HEKI_TEXT_PATCH',
  [HC.HEKI_SET_MEMORY]: 'KVM_HC_HEKI_SET_MEMORY',
  [HC.HEKI_LOAD_CODE]: 'KVM_HC_HEKI_LOAD_CODE',
  [HC.HEKI_KEXEC_LOAD]: 'KVM_HC_HEKI_KEXEC_LOAD',
  [HC.HEKI_KEXEC]: 'KVM_HC_HEKI_KEXEC',
  [HC.HEKI_FREE_MODULE_INIT]: 'KVM_HC_HEKI_FREE_MODULE_INIT',
};

/** True when `nr` is a hypercall the core implements. */
export function isHypercallNr(nr: number): nr is HypercallNr {
  return Object.prototype.hasOwnProperty.call(HC_NAMES, nr);
}

/**
 * Status codes, positive; a hypercall returns the negated code (KVM puts `-KVM_EPERM` in RAX).
 * Values from include/uapi/linux/kvm_para.h and include/uapi/asm-generic/errno-base.h.
 */
export const KVM_STATUS = {
  KVM_EPERM: 1,
  KVM_E2BIG: 7,
  /** Our extension: the verifier queue is full; retry later (errno EAGAIN). */
  KVM_EAGAIN: 11,
  KVM_EFAULT: 14,
  KVM_EINVAL: 22,
  KVM_EOPNOTSUPP: 95,
  KVM_ENOSYS: 1000,
} as const;

/** A status code name. */
export type KvmStatusName = keyof typeof KVM_STATUS;

/** Success. */
export const KVM_SUCCESS = 0;

/** Names a hypercall return value: `0`, `-KVM_EPERM`, or the number for other values. */
export function statusName(ret: number): string {
  if (ret === 0) return '0';
  for (const [name, code] of Object.entries(KVM_STATUS)) if (ret === -code) return `-${name}`;
  return String(ret);
}

/** Memory attributes of PROTECT_MEMORY entries (Heki v2 include/linux/mem_attr.h). */
export const MEM_ATTR = {
  READ: 1 << 0,
  WRITE: 1 << 1,
  /** Executable in supervisor mode. */
  EXEC: 1 << 2,
  /** No later change of this page's attributes is allowed, by anyone but a VMM reset. */
  IMMUTABLE: 1 << 3,
  /**
   * Our extension (MBEC): executable in user mode. Linux never needs it for kernel pages;
   * it exists so the X-user permission of the EPT is reachable through the ABI.
   */
  EXEC_USER: 1 << 4,
} as const;

/** Every attribute bit the ABI defines; any other bit is -KVM_EINVAL. */
export const MEM_ATTR_MASK = MEM_ATTR.READ | MEM_ATTR.WRITE | MEM_ATTR.EXEC | MEM_ATTR.IMMUTABLE | MEM_ATTR.EXEC_USER;

/** Formats attribute bits as `R-X-I` style text. */
export function memAttrString(attr: number): string {
  return (
    (attr & MEM_ATTR.READ ? 'R' : '-') +
    (attr & MEM_ATTR.WRITE ? 'W' : '-') +
    (attr & MEM_ATTR.EXEC ? 'X' : '-') +
    (attr & MEM_ATTR.EXEC_USER ? 'U' : '-') +
    (attr & MEM_ATTR.IMMUTABLE ? 'I' : '-')
  );
}

/**
 * KVM_HC_HEKI_KEXEC_LOAD flags (a1), after kexec_file_load's (include/uapi/linux/kexec.h:
 * KEXEC_FILE_UNLOAD is bit 0 and KEXEC_FILE_ON_CRASH bit 1 there too).
 */
export const KEXEC_FLAG = {
  /** Empty the slot instead of loading (a0 is ignored). */
  UNLOAD: 1 << 0,
  /** The crash kernel's slot: run only on a panic, never by KVM_HC_HEKI_KEXEC. */
  ON_CRASH: 1 << 1,
} as const;
/** Every KEXEC_LOAD flag; any other bit is -KVM_EINVAL. */
export const KEXEC_FLAGS_MASK = KEXEC_FLAG.UNLOAD | KEXEC_FLAG.ON_CRASH;

/** LOCK_CR_UPDATE flag: return {@link HEKI_ABI_VERSION} instead of pinning anything. */
export const HEKI_LOCK_CR_FLAG_ABI_VERSION = 1;
/** Every LOCK_CR_UPDATE flag; any other bit is -KVM_EINVAL. */
export const HEKI_LOCK_CR_FLAGS_MASK = HEKI_LOCK_CR_FLAG_ABI_VERSION;

/**
 * Bits a guest may pin, per control register (Heki v3 arch/x86/kvm/x86.c:
 * `heki_cr0_pinnable = X86_CR0_WP`, `heki_cr4_pinnable = SMEP | SMAP | UMIP | FSGSBASE | CET`).
 */
export const PINNABLE: Readonly<Record<0 | 4, bigint>> = {
  0: CR0.WP,
  4: CR4.SMEP | CR4.SMAP | CR4.UMIP | CR4.FSGSBASE | CR4.CET,
};

/**
 * Attribute bits of `KVM_HC_MAP_GPA_RANGE` a2 (arch/x86/include/uapi/asm/kvm_para.h):
 * bits 3:0 are the preferred page size (0 = 4 KiB, 1 = 2 MiB, 2 = 1 GiB: a hint only), bit 4
 * is the encryption status (`KVM_MAP_GPA_RANGE_ENC_STAT(n)` = n << 4): 1 encrypted (private),
 * 0 decrypted (shared with the host).
 */
export const KVM_MAP_GPA_RANGE = {
  PAGE_SZ_4K: 0,
  PAGE_SZ_2M: 1 << 0,
  PAGE_SZ_1G: 1 << 1,
  /** `KVM_MAP_GPA_RANGE_ENCRYPTED`: the pages become private. */
  ENCRYPTED: 1 << 4,
  /** `KVM_MAP_GPA_RANGE_DECRYPTED`: the pages become shared with the host. */
  DECRYPTED: 0,
} as const;

/** Bits 3:0 of the MAP_GPA_RANGE attributes: the page-size hint. */
export const KVM_MAP_GPA_RANGE_PAGE_SZ_MASK = 0xf;
/** Every MAP_GPA_RANGE attribute bit the ABI defines; any other bit is -KVM_EINVAL. */
export const KVM_MAP_GPA_RANGE_ATTR_MASK = KVM_MAP_GPA_RANGE_PAGE_SZ_MASK | KVM_MAP_GPA_RANGE.ENCRYPTED;
/** Largest defined page-size hint (1 GiB); hints 3..15 are -KVM_EINVAL. */
export const KVM_MAP_GPA_RANGE_MAX_PAGE_SZ = 2;
