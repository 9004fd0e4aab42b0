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

/** Reports a denial to the VMM and returns the status for the guest. */
export function verificationDenied({ core, vcpu }: HypercallContext, request: string, subject: string, verdict: Verdict | { reason: string }): number {
  if ('ok' in verdict && isRetryable(verdict)) return -KVM_STATUS.KVM_EAGAIN;
  if (core.denialExits(HEKI_DENIAL.VERIFICATION)) {
    core.exit({ reason: 'heki-denial', vcpu: vcpu.id, denial: { kind: 'verification', request, subject, reason: verdict.reason } });
  }
  return -KVM_STATUS.KVM_EPERM;
}

/** Decodes a guest-supplied name (UTF-8, no NULs), or undefined. */
export function decodeName(bytes: Uint8Array | undefined): string | undefined {
  if (!bytes) return undefined;
  const name = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return name.length > 0 && !name.includes('\0') ? name : undefined;
}
