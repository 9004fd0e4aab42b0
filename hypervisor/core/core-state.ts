/**
 * The protection state of one VM core as plain data: what a hibernation image and a
 * migration snapshot carry so that the VMM can re-apply every protection before the guest
 * runs again (hypervisor/vmm/lifecycle/). KVM migrates the same kinds of state through its
 * GET/SET ioctls (KVM_GET_SREGS, KVM_GET_MSRS, the MSR filter the VMM installed itself); the
 * Heki parts (pins, EPT attributes with IMMUTABLE, the authenticator's records) need ioctls
 * KVM does not have yet: {@link VmCore.saveState} and {@link VmCore.loadState}.
 */
import type { AuthenticatorState, KernelRegion } from './auth/authenticator.ts';
import type { CrFilter } from './cr-filter.ts';
import type { MsrFilter } from './msr-filter.ts';
import type { VcpuState } from '../vcpu/vcpu.ts';

/** Format version of {@link CoreState}; a state of another version is refused. */
export const CORE_STATE_VERSION = 1;

/** Everything the core enforces for one VM, and its vCPUs' registers. */
export interface CoreState {
  readonly version: number;
  /** Guest RAM in bytes (the destination must have the same). */
  readonly memoryBytes: bigint;
  /** Pinned CR0 and CR4 bits. */
  readonly pins: { readonly cr0: bigint; readonly cr4: bigint };
  readonly msrFilter: MsrFilter;
  readonly crFilter: CrFilter;
  readonly hekiExitMasks: { readonly configure: number; readonly denial: number };
  /**
   * Every EPT entry that differs from the default, as runs [first frame, frames, EPT bits]
   * (IMMUTABLE included, never FROZEN): heki_late_init locks all of RAM, so runs keep it small.
   */
  readonly ept: ReadonlyArray<[number, number, number]>;
  /** Protected-memory mode, and the frames the guest shared with the host. */
  readonly protectedMemory: boolean;
  readonly sharedFrames: readonly number[];
  /** The vCPUs' registers, by vCPU id. */
  readonly vcpus: readonly VcpuState[];
  /** The authenticated-change records, when a verifier is attached. */
  readonly auth: (AuthenticatorState & { readonly vm: string; readonly kernelRegions: readonly KernelRegion[] }) | undefined;
}

/** Why a state cannot be saved or loaded. */
export type CoreStateError =
  /** A verification holds frames frozen: save after it ends. */
  | { readonly kind: 'busy'; readonly message: string }
  /** The VM has run since its reset: loading would overwrite live protections. */
  | { readonly kind: 'not-fresh'; readonly message: string }
  /** The state does not fit this VM (size, vCPU count, version, shape). */
  | { readonly kind: 'mismatch'; readonly message: string };
