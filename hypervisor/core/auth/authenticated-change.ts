/**
 * The one function every authenticated hypercall calls: **freeze, snapshot, verify, apply,
 * audit** (ARCHITECTURE.md), and thaw on every path. A hypercall handler validates its
 * arguments and resolves what it will touch (nothing changes before that: the contract of
 * hypercalls/context.ts), then describes the change as an {@link AuthenticatedChange} and
 * hands it to {@link authenticatedChange}, which owns the order. A handler never calls the
 * authenticator's freeze, thaw, verify or record itself, so a new kind of change cannot skip a
 * step or reorder two (test/unit/authenticated-change.test.ts holds every handler to it).
 *
 * Two shapes of change:
 * - `gate: 'verdict'` (end-boot, load-module, load-code, set-memory, text-patch, kexec-load):
 *   nothing is applied without an allowed verdict, and the target frames stay frozen from
 *   before the snapshot until after the apply.
 * - `gate: 'none'` (unload-module): a change that only takes permissions away is applied
 *   first, whatever the verifier says or whether it answers; the verifier is told, and its
 *   verdict is audited. A "free module init" path is of this shape too.
 *
 * INVARIANT: every path that reached the verifier, or that the core refused on its own, leaves
 * exactly one verdict record in the audit log; a step that throws (a broken invariant: the
 * dispatcher stops the VM) leaves a record naming the step, and the frames are thawed.
 */
import { KVM_STATUS } from '../../../shared/abi.ts';
import { HEKI_DENIAL } from '../../../shared/exit-reasons.ts';
import { isRetryable, type Verdict } from '../../../shared/protocol.ts';
import type { PatchRecords } from '../../../shared/ring/patch-records.ts';
import type { OutgoingRequest } from '../../verifier-link/verifier-link.ts';
import type { VmCore } from '../vm-core.ts';
import type { Authenticator } from './authenticator.ts';
import type { Gfn } from '../../../shared/addr.ts';

/** Fields a change adds to its audit records (after `applied`). */
export type AuditFields = Readonly<Record<string, string | number | boolean | null>>;

/** Who asked for the change: the core (for denial exits) and the calling vCPU. */
export interface ChangeCaller {
  readonly core: Pick<VmCore, 'denialExits' | 'exit'>;
  readonly vcpu: { readonly id: number };
}

/** What the core asks the verifier: one request, or a text-patch batch in record form. */
export type ChangeQuestion = { readonly request: OutgoingRequest } | { readonly patches: PatchRecords };

/** What the snapshot step found, taken after the freeze. */
export type ChangeSnapshot =
  /** Ask the verifier this. */
  | { readonly kind: 'ask'; readonly question: ChangeQuestion }
  /**
   * The guest's input is malformed in a way only the frozen bytes show (-KVM_EINVAL): like
   * every -KVM_EINVAL before the freeze, nothing is asked and nothing is audited.
   */
  | { readonly kind: 'invalid'; readonly status: number }
  /** The core refuses on its own (plugins `core`): audited and denied like a verifier denial. */
  | { readonly kind: 'refuse'; readonly reason: string };

/**
 * What the apply step did with an allowed verdict. INVARIANT: a refusal changed nothing; the
 * apply step checks everything it refuses on before it changes the first frame.
 */
export type ChangeApplied =
  | { readonly kind: 'applied'; readonly audit?: AuditFields }
  /** The core's own check of the verdict failed: audited with `note`, denied with `reason`. */
  | { readonly kind: 'refused'; readonly note: string; readonly reason: string }
  /** Someone else refused to carry it out (the VMM): audited with `note`, `status` returned, no denial exit. */
  | { readonly kind: 'failed'; readonly note: string; readonly status: number };

/** What every change names. */
interface ChangeBase {
  /** The audit and denial name: the request kind (`module-load`, `text-patch`, ...). */
  readonly kind: string;
  /** What the audit record and the denial exit call the target (`mod0`, `3 patches (...)`). */
  readonly subject: string;
  /** Fields on every audit record of this change, after `applied` (kexec-load's `slot`). */
  readonly audit?: AuditFields;
}

/** A change applied only on an allowed verdict. */
export interface GatedChange extends ChangeBase {
  readonly gate: 'verdict';
  /** The frames the guest must not write from the snapshot until after the apply. */
  readonly freeze: Iterable<Gfn>;
  /** Copies the frozen bytes into the question (or finds the input invalid, or refuses). */
  snapshot(): ChangeSnapshot;
  /** Applies an allowed verdict; runs while the frames are still frozen. */
  apply(verdict: Verdict): ChangeApplied;
  /**
   * Optional: what a denial (the verifier's or the core's, before anything was applied) writes
   * back to the guest, such as text-patch's per-entry statuses; returns fields for the record.
   */
  denied?(verdict: Verdict): AuditFields;
}

/** A change that only takes permissions away: applied before the verifier is asked, never gated. */
export interface RevocationChange extends ChangeBase {
  readonly gate: 'none';
  /** Takes the permissions away; returns fields for the record (`applied: true` is implied). */
  revoke(): AuditFields;
  /** What the verifier is told (so that it forgets what was revoked). */
  readonly request: OutgoingRequest;
}

/** A typed description of one authenticated change. */
export type AuthenticatedChange = GatedChange | RevocationChange;

/** Writes the change's one audit record for verdict `v`. */
type Recorder = (v: Verdict, applied: boolean | null, fields?: AuditFields) => void;

/** The step a change was in when it threw, as its audit record names it. */
type Step = 'freeze' | 'snapshot' | 'verify' | 'deny' | 'apply' | 'audit' | 'revoke';

/**
 * Runs `change` for `caller` under `auth`: freeze, snapshot, verify, apply, audit, thaw.
 * Resolves to the value the hypercall leaves in RAX (0, or a negated KVM status); rethrows a
 * step's exception after auditing it and thawing.
 */
export async function authenticatedChange(caller: ChangeCaller, auth: Authenticator, change: AuthenticatedChange): Promise<number> {
  let step: Step = change.gate === 'verdict' ? 'freeze' : 'revoke';
  let verdict: Verdict | undefined;
  // What the audit says was applied if a step throws: nothing until the apply (or revoke)
  // step starts, then unknown (null) until it returns.
  let applied: boolean | null = false;
  let frozen: Gfn[] = [];
  const record: Recorder = (v, applied, fields = {}) => auth.record(change.kind, change.subject, v, { applied, ...change.audit, ...fields });
  try {
    if (change.gate === 'none') {
      applied = null;
      const fields = change.revoke();
      applied = true;
      step = 'verify';
      verdict = await auth.verify(change.request);
      step = 'audit';
      record(verdict, true, fields);
      return 0;
    }
    frozen = auth.freeze(change.freeze);
    step = 'snapshot';
    const snap = change.snapshot();
    if (snap.kind === 'invalid') return snap.status;
    if (snap.kind === 'refuse') {
      verdict = coreVerdict(snap.reason);
    } else {
      step = 'verify';
      const q = snap.question;
      verdict = 'patches' in q ? await auth.verifyPatches(q.patches) : await auth.verify(q.request);
    }
    if (!verdict.ok) {
      step = 'deny';
      const fields = change.denied?.(verdict) ?? {};
      step = 'audit';
      record(verdict, false, fields);
      step = 'deny';
      return deny(caller, change, verdict);
    }
    step = 'apply';
    applied = null;
    const done = change.apply(verdict);
    applied = done.kind === 'applied';
    step = 'audit';
    if (done.kind === 'applied') {
      record(verdict, true, done.audit);
      return 0;
    }
    record(verdict, false, { note: done.note });
    step = 'deny';
    return done.kind === 'refused' ? deny(caller, change, { reason: done.reason }) : done.status;
  } catch (e) {
    throw auditFailure(e, step, applied, verdict, record);
  } finally {
    auth.thaw(frozen);
  }
}

/**
 * Reports a denial to the VMM and returns the guest's status: a `heki-denial` exit of kind
 * `verification` when the VMM enabled it, then -KVM_EPERM. A retryable refusal (the verifier's
 * queue was full: nobody decided) is no denial: no exit, -KVM_EAGAIN, and the guest may ask again.
 */
function deny({ core, vcpu }: ChangeCaller, change: ChangeBase, verdict: Verdict | { reason: string }): number {
  if ('ok' in verdict && isRetryable(verdict)) return -KVM_STATUS.KVM_EAGAIN;
  if (core.denialExits(HEKI_DENIAL.VERIFICATION)) {
    const denial = { kind: 'verification', request: change.kind, subject: change.subject, reason: verdict.reason } as const;
    core.exit({ reason: 'heki-denial', vcpu: vcpu.id, denial });
  }
  return -KVM_STATUS.KVM_EPERM;
}

/** The core's own refusal, recorded like a verdict (no verifier request id). */
function coreVerdict(reason: string): Verdict {
  return { v: 1, id: -1, ok: false, reason, plugins: ['core'] };
}

/**
 * Audits a step that threw and returns the error to rethrow (the dispatcher stops the VM).
 * `applied` is null when the apply or revoke step itself threw: it may have changed part of
 * what it meant to. A record that cannot be written joins the error.
 */
function auditFailure(e: unknown, step: Step, applied: boolean | null, verdict: Verdict | undefined, record: Recorder): unknown {
  const message = e instanceof Error ? e.message : String(e);
  try {
    record(verdict ?? coreVerdict(`internal error: ${message}`), applied, { error: message, step });
  } catch (a) {
    return new Error(`${message}; and its audit record could not be written: ${a instanceof Error ? a.message : String(a)}`);
  }
  return e;
}
