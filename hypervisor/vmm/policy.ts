/**
 * The VMM's policy: how it reacts to each exit. Policy lives in host userspace, not in the
 * core, as KVM's maintainers asked of Heki. A policy is a set of optional per-reason
 * deciders; a reason without one gets {@link DEFAULT_POLICY}'s answer: inject the fault (or
 * refuse the request) and log it, except for Heki configuration requests, which the default
 * accepts.
 */
import type { ExitReason } from '../../shared/exit-reasons.ts';
import type { ExitOf } from '../exits/exit.ts';

/** A policy's answer to one exit. */
export interface Decision {
  /** `resume` (allow / accept), `inject` (refuse: #GP, #PF or an error status), `stop` (stop the VM). */
  readonly action: 'resume' | 'inject' | 'stop';
  /** Whether the VMM's event log records this exit (default true). */
  readonly log?: boolean;
  /** Why, for the log and for `stop`. */
  readonly reason?: string;
}

/** Per-reason deciders; each one optional. */
export type VmmPolicy = { readonly [R in ExitReason]?: (exit: ExitOf<R>) => Decision };

const inject: Decision = { action: 'inject', log: true };

/**
 * What the VMM does when a policy is silent: inject and log; accept Heki configuration; stop
 * a VM whose booted kernel text the verifier refused (it is not the kernel that was signed);
 * accept the guest's lifecycle requests (reset, panic, S4, S5, kexec) and stage verified
 * kexec images: the VMM carries them out itself (hypervisor/vmm/lifecycle/).
 */
export const DEFAULT_POLICY: Required<VmmPolicy> = {
  'ept-violation': () => inject,
  'cr-write': () => inject,
  'msr-write': () => inject,
  'msr-read': () => inject,
  'dt-write': () => inject,
  'heki-configure': () => ({ action: 'resume', log: true }),
  'heki-denial': (e) =>
    e.denial.kind === 'verification' && e.denial.request === 'kernel-text'
      ? { action: 'stop', log: true, reason: `the booted kernel does not match the signed manifest: ${e.denial.reason}` }
      : inject,
  'system-event': () => ({ action: 'resume', log: true }),
  'kexec-load': () => ({ action: 'resume', log: true }),
};

/** A policy that stops the VM on every violation or denial, for strict regression runs. */
export const STOP_ON_VIOLATION: VmmPolicy = {
  'ept-violation': (e) => ({ action: 'stop', reason: `EPT violation: ${e.mode} ${e.access} of gpa 0x${e.gpa.toString(16)}` }),
  'heki-denial': (e) => ({ action: 'stop', reason: `Heki denial: ${e.denial.kind}` }),
};
