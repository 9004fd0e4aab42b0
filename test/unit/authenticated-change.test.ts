/**
 * The one authenticated-change function (hypervisor/core/auth/authenticated-change.ts) on its
 * own: freeze, snapshot, verify, apply, audit, thaw, in that order on every path, with a
 * change description whose steps write to a trace. What every hypercall does through it is
 * in authenticated-change-hypercalls.test.ts.
 */
import { gfn } from '../../shared/addr.ts';
import test from 'ava';
import { KVM_STATUS } from '../../shared/abi.ts';
import { PROTOCOL_VERSION, busyVerdict, type Verdict } from '../../shared/protocol.ts';
import { Ept } from '../../hypervisor/ept/ept.ts';
import { EPT_FROZEN, EPT_R, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import { Authenticator, type VerifierPort } from '../../hypervisor/core/auth/authenticator.ts';
import { authenticatedChange, type ChangeCaller, type ChangeSnapshot, type GatedChange } from '../../hypervisor/core/auth/authenticated-change.ts';
import type { VmExit } from '../../hypervisor/exits/exit.ts';
import { AuditLog } from '../../hypervisor/audit/audit-log.ts';

const FRAMES = [gfn(3), gfn(4)];

interface Rig {
  readonly auth: Authenticator;
  readonly ept: Ept;
  readonly audit: AuditLog;
  readonly caller: ChangeCaller;
  readonly exits: VmExit[];
  readonly trace: string[];
  /** Whether every one of FRAMES is frozen now. */
  frozen(): boolean;
}

function rig(answer: (trace: string[]) => Verdict | Promise<Verdict>): Rig {
  const ept = new Ept(16);
  const audit = AuditLog.inMemory();
  const trace: string[] = [];
  const frozen = () => FRAMES.every((f) => (ept.get(gfn(f)) & EPT_FROZEN) !== 0);
  const port: VerifierPort = {
    async verify() {
      trace.push(`verify:${frozen() ? 'frozen' : 'THAWED'}`);
      return answer(trace);
    },
  };
  const auth = new Authenticator({ port, vm: 'vm0', audit, kernelRegions: [] }, ept);
  const append = audit.append.bind(audit);
  audit.append = (fields) => {
    trace.push(`audit:${frozen() ? 'frozen' : 'THAWED'}`);
    return append(fields);
  };
  const exits: VmExit[] = [];
  const caller: ChangeCaller = {
    vcpu: { id: 0 },
    core: {
      denialExits: () => true,
      exit: (e) => {
        exits.push(e);
        return { action: 'resume' };
      },
    },
  };
  return { auth, ept, audit, caller, exits, trace, frozen };
}

const allow = (): Verdict => ({ v: PROTOCOL_VERSION, id: 7, ok: true, reason: 'ok', plugins: ['stub'] });
const refuse = (): Verdict => ({ v: PROTOCOL_VERSION, id: 7, ok: false, reason: 'stub: no', plugins: ['stub'] });

/** A change to FRAMES whose steps trace themselves; `over` replaces any of them. */
function change(r: Rig, over: Partial<GatedChange> = {}): GatedChange {
  const { trace, frozen, auth } = r;
  return {
    gate: 'verdict',
    kind: 'test-change',
    subject: 'frames 3,4',
    freeze: FRAMES,
    snapshot: (): ChangeSnapshot => {
      trace.push(`snapshot:${frozen() ? 'frozen' : 'THAWED'}`);
      return { kind: 'ask', question: { request: { kind: 'module-unload', vm: 'vm0', name: 'x' } } };
    },
    apply: () => {
      trace.push(`apply:${frozen() ? 'frozen' : 'THAWED'}`);
      for (const f of FRAMES) auth.setPermissions(gfn(f), EPT_R | EPT_XS);
      return { kind: 'applied', audit: { frames: FRAMES.length } };
    },
    ...over,
  };
}

test('allowed: snapshot, verify and apply see the frames frozen, the record follows the apply, the thaw follows the record', async (t) => {
  const r = rig(allow);
  t.is(await authenticatedChange(r.caller, r.auth, change(r)), 0);
  t.deepEqual(r.trace, ['snapshot:frozen', 'verify:frozen', 'apply:frozen', 'audit:frozen']);
  t.false(r.frozen(), 'thawed once the change is done');
  for (const f of FRAMES) t.is(r.ept.get(gfn(f)), EPT_R | EPT_XS, 'the apply step set permissions, and the thaw kept them');
  t.like(r.audit.records()[0], { event: 'verdict', kind: 'test-change', subject: 'frames 3,4', request: 7, ok: true, applied: true, frames: 2 });
  t.is(r.audit.records().length, 1);
});

test('denied: nothing is applied, one record, a denial exit, -KVM_EPERM, thawed', async (t) => {
  const r = rig(refuse);
  t.is(await authenticatedChange(r.caller, r.auth, change(r)), -KVM_STATUS.KVM_EPERM);
  t.deepEqual(r.trace, ['snapshot:frozen', 'verify:frozen', 'audit:frozen']);
  t.false(r.frozen());
  t.like(r.audit.records()[0], { ok: false, applied: false, reason: 'stub: no' });
  t.like(r.exits[0], { reason: 'heki-denial', denial: { kind: 'verification', request: 'test-change', subject: 'frames 3,4', reason: 'stub: no' } });
});

test('a retryable refusal is audited as such and returns -KVM_EAGAIN without a denial exit', async (t) => {
  const r = rig(() => busyVerdict(7, 'queue full'));
  t.is(await authenticatedChange(r.caller, r.auth, change(r)), -KVM_STATUS.KVM_EAGAIN);
  t.like(r.audit.records()[0], { ok: false, applied: false, retryable: true });
  t.is(r.exits.length, 0);
});

test('the core refusing in the snapshot step asks nobody, and is audited and denied like a verdict', async (t) => {
  const r = rig(allow);
  let deniedWith: Verdict | undefined;
  const c = change(r, {
    snapshot: () => ({ kind: 'refuse', reason: 'not verified text' }),
    denied: (v) => {
      deniedWith = v;
      return { denied: 1 };
    },
  });
  t.is(await authenticatedChange(r.caller, r.auth, c), -KVM_STATUS.KVM_EPERM);
  t.deepEqual(r.trace, ['audit:frozen'], 'no verifier call, no apply');
  t.like(deniedWith, { ok: false, id: -1, plugins: ['core'] }, 'the denied step sees the core verdict');
  t.like(r.audit.records()[0], { request: -1, ok: false, applied: false, denied: 1, plugins: ['core'], reason: 'not verified text' });
  t.false(r.frozen());
});

test('input found invalid in the frozen bytes returns its status, asks nobody and audits nothing', async (t) => {
  const r = rig(allow);
  t.is(
    await authenticatedChange(r.caller, r.auth, change(r, { snapshot: () => ({ kind: 'invalid', status: -KVM_STATUS.KVM_EINVAL }) })),
    -KVM_STATUS.KVM_EINVAL,
  );
  t.deepEqual(r.trace, []);
  t.false(r.frozen());
});

test('the apply step refusing changes nothing, is audited with its note and denied with its reason; a failure returns its status', async (t) => {
  const r = rig(allow);
  const refused = change(r, { apply: () => ({ kind: 'refused', note: 'frame 3 shared', reason: 'frame 3 is shared' }) });
  t.is(await authenticatedChange(r.caller, r.auth, refused), -KVM_STATUS.KVM_EPERM);
  t.like(r.audit.records()[0], { ok: true, applied: false, note: 'frame 3 shared' });
  t.like(r.exits[0], { denial: { reason: 'frame 3 is shared' } });
  const failed = change(r, { apply: () => ({ kind: 'failed', note: 'the VMM refused', status: -KVM_STATUS.KVM_EPERM }), audit: { slot: 'kexec' } });
  t.is(await authenticatedChange(r.caller, r.auth, failed), -KVM_STATUS.KVM_EPERM);
  t.like(r.audit.records()[1], { applied: false, slot: 'kexec', note: 'the VMM refused' });
  t.is(r.exits.length, 1, 'no denial exit: the VMM knows it refused');
  t.false(r.frozen());
});

for (const step of ['snapshot', 'apply', 'denied'] as const) {
  test(`a throw in the ${step} step is audited naming the step, the frames thaw, and the error reaches the dispatcher`, async (t) => {
    const r = rig(step === 'denied' ? refuse : allow);
    const boom = () => {
      throw new Error(`broken ${step}`);
    };
    const c = change(r, step === 'snapshot' ? { snapshot: boom } : step === 'apply' ? { apply: boom } : { denied: boom });
    await t.throwsAsync(authenticatedChange(r.caller, r.auth, c), { message: `broken ${step}` });
    t.false(r.frozen(), 'thawed');
    const rec = r.audit.records();
    t.is(rec.length, 1);
    t.like(rec[0], { error: `broken ${step}`, step: step === 'denied' ? 'deny' : step });
    // The record carries the verdict there was (a core one when the verifier was not reached);
    // before the apply step nothing was applied, a throwing apply step may have done part of it.
    t.is(rec[0]!['ok'], step === 'apply');
    t.is(rec[0]!['plugins']?.toString(), step === 'snapshot' ? 'core' : 'stub');
    t.is(rec[0]!['applied'], step === 'apply' ? null : false);
  });
}

test('a verifier that throws is a denial (fail closed), not an internal error', async (t) => {
  const r = rig(() => {
    throw new Error('worker died');
  });
  t.is(await authenticatedChange(r.caller, r.auth, change(r)), -KVM_STATUS.KVM_EPERM);
  t.regex(String(r.audit.records()[0]!['reason']), /verifier unavailable: worker died/);
  t.false(r.frozen());
});

test('an audit log that cannot be written still thaws, and the error names both failures', async (t) => {
  const r = rig(allow);
  r.audit.append = () => {
    throw new Error('disk full');
  };
  await t.throwsAsync(authenticatedChange(r.caller, r.auth, change(r)), { message: /disk full; and its audit record could not be written: disk full/ });
  t.false(r.frozen());
});

test('reset invariant: a verdict that arrives after the VM was reset is a denial and nothing is applied', async (t) => {
  let release!: () => void;
  const gate = new Promise<void>((res) => (release = res));
  const r = rig(async () => {
    await gate;
    return allow();
  });
  const run = authenticatedChange(r.caller, r.auth, change(r));
  r.auth.retire(); // the VMM reset the VM while the verifier decides
  release();
  t.is(await run, -KVM_STATUS.KVM_EPERM);
  t.false(
    r.trace.some((s) => s.startsWith('apply')),
    'apply never ran',
  );
  t.like(r.audit.records()[0], { ok: false, applied: false, reason: 'the VMM reset the VM while the verifier decided: nothing is applied' });
});

test('overlapping changes: a shared frame stays frozen until the last of them is done', async (t) => {
  const releases: Array<() => void> = [];
  const r = rig(() => new Promise<Verdict>((res) => releases.push(() => res(allow()))));
  const first = authenticatedChange(r.caller, r.auth, change(r, { freeze: [gfn(3)] }));
  const second = authenticatedChange(r.caller, r.auth, change(r, { freeze: [gfn(3), gfn(4)] }));
  releases[0]!();
  t.is(await first, 0);
  t.not(r.ept.get(gfn(3)) & EPT_FROZEN, 0, 'frame 3 is still under the second verification');
  releases[1]!();
  t.is(await second, 0);
  t.is(r.ept.get(gfn(3)) & EPT_FROZEN, 0);
});

test('a revocation is applied before the verifier is asked, and audited as applied whatever it says', async (t) => {
  const r = rig(() => {
    throw new Error('worker died');
  });
  const status = await authenticatedChange(r.caller, r.auth, {
    gate: 'none',
    kind: 'module-unload',
    subject: 'mod0',
    revoke: () => {
      r.trace.push('revoke');
      return { frames: 2 };
    },
    request: { kind: 'module-unload', vm: 'vm0', name: 'mod0' },
  });
  t.is(status, 0);
  t.deepEqual(r.trace, ['revoke', 'verify:THAWED', 'audit:THAWED']);
  t.like(r.audit.records()[0], { kind: 'module-unload', ok: false, applied: true, frames: 2 });
  t.is(r.exits.length, 0);
});
