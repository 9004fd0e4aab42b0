/**
 * The faults a vCPU raises, built one way for its instructions and its memory accesses.
 */
import type { GuestFault } from '../../shared/guest-cpu.ts';
import type { Gfn, GuestVirtAddr } from '../../shared/addr.ts';

/** A translated address or the fault that stopped it. */
export type Translation = { ok: true; frame: Gfn } | { ok: false; fault: GuestFault };

/** A #GP with the cause and detail the guest sees. */
export function gp(cause: string, detail: string): { ok: false; fault: GuestFault } {
  return { ok: false, fault: { kind: 'fault', vector: 'GP', errorCode: 0, cause, detail } };
}

/** A #PF at `address`. */
export function pf(address: GuestVirtAddr, errorCode: number, cause: string, detail?: string): { ok: false; fault: GuestFault } {
  return {
    ok: false,
    fault: { kind: 'fault', vector: 'PF', errorCode, address, cause, detail: `#PF at 0x${address.toString(16)}: ${detail ?? cause}` },
  };
}

/** The answer of a vCPU whose VM is stopped. */
export function stoppedOutcome(detail: string): { ok: false; fault: GuestFault } {
  return { ok: false, fault: { kind: 'stopped', detail } };
}
