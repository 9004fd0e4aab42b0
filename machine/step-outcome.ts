/**
 * Builders of {@link StepOutcome}s, and the one mapping from the guest's typed failures to
 * them: a protection that stopped the step is `denied`, a step that could not be carried out
 * is `error`. The mapping reads the failure's kind, never its message.
 */
import type { GuestFault, GuestOutcome } from '../shared/guest-cpu.ts';
import type { GuestOpError } from '../guest/heki/refusal.ts';
import type { StepOutcome } from './machine-api.ts';

/** The step took effect. */
export const allowed = (reason: string, detail?: StepOutcome['detail']): StepOutcome => ({ outcome: 'allowed', reason, ...(detail ? { detail } : {}) });
/** A protection stopped the step. */
export const denied = (reason: string, detail?: StepOutcome['detail']): StepOutcome => ({ outcome: 'denied', reason, ...(detail ? { detail } : {}) });
/** The step could not be carried out. */
export const error = (reason: string): StepOutcome => ({ outcome: 'error', reason });

/** The answer of every step that needs a running guest kernel when there is none. */
export const NOT_BOOTED: StepOutcome = error('the kernel is not booted (add a boot step first)');

/** A guest operation's failure: `denied` when the hypervisor refused it, else `error`. */
export function fromGuestError(e: GuestOpError): StepOutcome {
  return e.kind === 'refused' ? denied(e.message) : error(e.message);
}

/** Describes a fault the way reports show it: `#PF (ept-violation): ...`. */
export function describeFault(f: GuestFault): string {
  return f.kind === 'stopped' ? `VM stopped: ${f.detail}` : `#${f.vector} (${f.cause}): ${f.detail}`;
}

/** A vCPU access: `allowed` with `what`, or `denied` with the fault that stopped it. */
export function fromAccess(r: GuestOutcome<unknown>, what: string): StepOutcome {
  return r.ok ? allowed(what) : denied(describeFault(r.fault));
}
