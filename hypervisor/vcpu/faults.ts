/**
 * The faults a vCPU raises, built one way for its instructions and its memory accesses.
 */
import { PF_ERR } from '../../shared/x86/cpu.ts';
import type { AccessKind, AccessMode, GuestFault } from '../../shared/guest-cpu.ts';

/** A translated address or the fault that stopped it. */
export type Translation = { ok: true; frame: number } | { ok: false; fault: GuestFault };

/** The #PF error-code bits an access sets (W, I/D, U/S). */
export function codeBits(access: AccessKind, mode: AccessMode): number {
  return (access === 'write' ? PF_ERR.WRITE : 0) | (access === 'fetch' ? PF_ERR.FETCH : 0) | (mode === 'user' ? PF_ERR.USER : 0);
}

/** A #GP with the cause and detail the guest sees. */
export function gp(cause: string, detail: string): { ok: false; fault: GuestFault } {
  return { ok: false, fault: { kind: 'fault', vector: 'GP', errorCode: 0, cause, detail } };
}

/** A #PF at `address`. */
export function pf(address: bigint, errorCode: number, cause: string, detail?: string): { ok: false; fault: GuestFault } {
  return {
    ok: false,
    fault: { kind: 'fault', vector: 'PF', errorCode, address, cause, detail: `#PF at 0x${address.toString(16)}: ${detail ?? cause}` },
  };
}

/** The answer of a vCPU whose VM is stopped. */
export function stoppedOutcome(detail: string): { ok: false; fault: GuestFault } {
  return { ok: false, fault: { kind: 'stopped', detail } };
}
