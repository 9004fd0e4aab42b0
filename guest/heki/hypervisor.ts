/**
 * The hypervisor-agnostic side of Heki in the guest: an ops interface like Heki's
 * `struct heki_hypervisor` (include/linux/heki.h: `lock_crs`, `protect_memory`). A hypervisor
 * backend is one file implementing it (kvm-backend.ts); a second hypervisor is a new file,
 * not a rewrite. Optional members are the authenticated extensions; a backend without them
 * makes the guest fall back to "no dynamic code after boot".
 */
import type { PageRange } from '../../shared/page-list.ts';
import type { ModuleDescSection, PatchRequest } from '../../shared/heki-descriptors.ts';

/** What a hypervisor call returned: success, or the status and its name. */
export type HekiStatus = { readonly ok: true } | { readonly ok: false; readonly status: number; readonly name: string };

/** A module as the guest placed it, for validation. */
export interface ModuleValidation {
  readonly name: string;
  /** Guest-virtual address and length of the signed image (ELF plus trailer). */
  readonly imageVa: bigint;
  readonly imageLen: number;
  readonly sections: readonly ModuleDescSection[];
  /** The per-CPU pointer, when the module has `.data..percpu`. */
  readonly percpu?: bigint;
}

/** A signed code image (eBPF JIT output, trampoline). */
export interface CodeValidation {
  readonly what: 'bpf-jit' | 'trampoline';
  readonly name: string;
  readonly imageVa: bigint;
  readonly imageLen: number;
  readonly keyId: Uint8Array;
  readonly signature: Uint8Array;
}

/** A kexec kernel in guest memory: the bzImage and its signed manifest (kexec_file_load's two files). */
export interface KexecLoad {
  readonly imageVa: bigint;
  readonly imageLen: number;
  readonly manifestVa: bigint;
  readonly manifestLen: number;
  /** The crash kernel's slot (run only on a panic) instead of the kexec one. */
  readonly crash: boolean;
}

/** The ops a Heki hypervisor backend provides. */
export interface HekiHypervisor {
  /** Backend name for messages (`kvm`). */
  readonly name: string;
  /** The hypervisor's Heki ABI version, or undefined when it has no Heki support. */
  detect(): Promise<number | undefined>;
  /** Pins bits of CR0 or CR4. */
  lockCr(cr: 0 | 4, mask: bigint): Promise<HekiStatus>;
  /** Sets the permissions of guest-physical ranges (optionally immutable). */
  protectMemory(ranges: readonly PageRange[]): Promise<HekiStatus>;
  /** Optional: ends boot; the hypervisor checks the kernel text. */
  endBoot?(): Promise<HekiStatus>;
  /** Optional: authenticates a placed module and grants its permissions. */
  validateModule?(m: ModuleValidation): Promise<HekiStatus>;
  /** Optional: revokes a module's permissions. */
  unloadModule?(name: string): Promise<HekiStatus>;
  /**
   * Optional: a module's init returned; its init layout leaves it (data-only, no longer
   * executable) and its ro_after_init data is sealed, once the hypervisor's verifier agrees.
   */
  freeModuleInit?(name: string): Promise<HekiStatus>;
  /** Optional: applies text patches through the hypervisor; statuses per patch. */
  textPoke?(patches: readonly PatchRequest[]): Promise<HekiStatus & { readonly statuses: readonly number[] }>;
  /**
   * Optional: the same with the batch already encoded (shared/patch-batch-builder.ts); the
   * statuses are read back only when asked for (after a refusal).
   */
  textPokeBatch?(batch: Uint8Array): Promise<HekiStatus & { statuses(): readonly number[] }>;
  /** Optional: set_memory_* after boot. */
  setMemory?(va: bigint, pages: number, attributes: number): Promise<HekiStatus>;
  /** Optional: authenticates a signed code image. */
  loadCode?(c: CodeValidation): Promise<HekiStatus>;
  /** Optional: loads a kexec (or crash) kernel with its manifest; the hypervisor has it verified and staged. */
  kexecLoad?(k: KexecLoad): Promise<HekiStatus>;
  /** Optional: runs the loaded kexec kernel; the hypervisor resets the VM into it (does not return on success). */
  kexecExec?(): Promise<HekiStatus>;
}
