/**
 * What a Heki backend can authenticate, stated as data so the attack catalogue and the docs
 * can say which protections one ABI cannot express, with the reason, instead of hiding it.
 */

/** Protections a backend may lack; each has a HekiHypervisor op that is then absent. */
export type HekiGap = 'textPatch' | 'setMemory' | 'loadCode' | 'kexecExec' | 'crMask';

/** One backend's capabilities. */
export interface HekiCapabilities {
  /** The backend's name (HekiHypervisor.name). */
  readonly backend: string;
  /** `mask`: the guest chooses the CR bits to pin (Heki); `fixed`: the hypervisor's masks (LVBS). */
  readonly crPinning: 'mask' | 'fixed';
  /** What this backend cannot authenticate, and why. */
  readonly missing: Partial<Readonly<Record<HekiGap, string>>>;
  /** What this backend's ABI has that the Heki interface does not carry, and why it is unused. */
  readonly extra: Readonly<Record<string, string>>;
}

/** The KVM backend (guest/heki/kvm-backend.ts) implements every op. */
export const KVM_CAPABILITIES: HekiCapabilities = {
  backend: 'kvm',
  crPinning: 'mask',
  missing: {},
  extra: {},
};
