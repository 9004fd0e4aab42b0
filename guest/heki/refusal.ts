/**
 * Why a guest kernel operation did not happen, as data: the hypervisor refused it (with the
 * KVM-style status its hypercall returned), or the guest could not carry it out itself (a
 * bad file, no memory, a mapping that is not there). The runtime tells a protection that
 * stopped a step (`denied`) from a step that could not be tried (`error`) by `kind`, never
 * by reading the message.
 */
import type { HekiStatus } from './hypervisor.ts';

/** A hypercall's refusal: its status (negative, `-KVM_EPERM`...) and the status's name. */
export interface HekiRefusal {
  readonly status: number;
  readonly name: string;
}

/** Why a guest operation failed; each kind carries the message reports show. */
export type GuestOpError =
  /** The hypervisor refused the request (directly, or a request it depended on). */
  | { readonly kind: 'refused'; readonly refusal: HekiRefusal; readonly message: string }
  /** The guest gave up before or without the hypervisor's say. */
  | { readonly kind: 'failed'; readonly message: string };

/** The refusal a failed status stands for. */
export function refusalOf(s: Extract<HekiStatus, { ok: false }>): HekiRefusal {
  return { status: s.status, name: s.name };
}

/** A refusal by the hypervisor, with the message reports show. */
export function refused(refusal: HekiRefusal, message: string): GuestOpError {
  return { kind: 'refused', refusal, message };
}

/** A failure of the guest's own. */
export function failed(message: string): GuestOpError {
  return { kind: 'failed', message };
}

/**
 * The error of a memory-manager failure ({@link MmFailure}): still a refusal when the
 * hypervisor refused the mapping change underneath, with `prefix` before its reason.
 */
export function fromMm(f: MmFailure, prefix = ''): GuestOpError {
  const message = `${prefix}${f.reason}`;
  return f.refused ? refused(f.refused, message) : failed(message);
}

/** The same error with `prefix` before its message (a dependency's, for modprobe). */
export function prefixed(e: GuestOpError, prefix: string): GuestOpError {
  return { ...e, message: `${prefix}${e.message}` };
}

/** A memory-manager failure: its reason, and the hypervisor's refusal when that was the cause. */
export interface MmFailure {
  readonly ok: false;
  readonly reason: string;
  readonly refused?: HekiRefusal;
}
