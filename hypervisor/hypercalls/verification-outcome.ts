/**
 * What a denied verdict does to the guest, shared by every authenticated hypercall: a
 * `heki-denial` exit of kind `verification` when the VMM enabled it, then -KVM_EPERM (or the
 * VM stops, if the VMM says so). A retryable refusal (the verifier's queue was full: nobody
 * decided) is no denial: no exit, -KVM_EAGAIN, and the guest may ask again.
 */
import { KVM_STATUS } from '../../shared/abi.ts';
import { HEKI_DENIAL } from '../../shared/exit-reasons.ts';
import { isRetryable, type Verdict } from '../../shared/protocol.ts';
import type { HypercallContext } from './context.ts';
import type { Authenticator, ModuleRecord } from '../core/auth/authenticator.ts';

/** Reports a denial to the VMM and returns the status for the guest. */
export function verificationDenied({ core, vcpu }: HypercallContext, request: string, subject: string, verdict: Verdict | { reason: string }): number {
  if ('ok' in verdict && isRetryable(verdict)) return -KVM_STATUS.KVM_EAGAIN;
  if (core.denialExits(HEKI_DENIAL.VERIFICATION)) {
    core.exit({ reason: 'heki-denial', vcpu: vcpu.id, denial: { kind: 'verification', request, subject, reason: verdict.reason } });
  }
  return -KVM_STATUS.KVM_EPERM;
}

/**
 * The authenticator and its record of the loaded module a hypercall names by a0 (guest-virtual address of
 * the name) and a1 (its length, 1..256), or the negated status to return: -KVM_EOPNOTSUPP
 * without a verifier, -KVM_EINVAL for a bad name or one the core has no record of.
 */
export function namedModule({ core, vcpu }: HypercallContext, a0: bigint, a1: bigint): { auth: Authenticator; name: string; rec: ModuleRecord } | number {
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  if (a1 === 0n || a1 > 256n) return -KVM_STATUS.KVM_EINVAL;
  const name = decodeName(vcpu.readForCore(a0, Number(a1)));
  const rec = name === undefined ? undefined : auth.modules.get(name);
  return name !== undefined && rec ? { auth, name, rec } : -KVM_STATUS.KVM_EINVAL;
}

/** Decodes a guest-supplied name (UTF-8, no NULs), or undefined. */
export function decodeName(bytes: Uint8Array | undefined): string | undefined {
  if (!bytes) return undefined;
  const name = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return name.length > 0 && !name.includes('\0') ? name : undefined;
}
