/**
 * A retryable refusal (the verifier's queue was full) is not a denial: the hypercall returns
 * -KVM_EAGAIN, the VMM sees no denial exit, nothing changes, the audit record says
 * `retryable: true`, and the same call succeeds when the verifier has room again.
 */
import { gpa, gpaToGfn } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, lockSyntheticKernel } from '../helpers/synthetic-machine.ts';
import { withVerifier } from '../helpers/stub-verifier-machine.ts';
import { HC, KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { PATCH_STATUS, encodePatchBatch, patchStatuses } from '../../shared/heki-descriptors.ts';
import { busyVerdict, isRetryable, validateVerdict } from '../../shared/protocol.ts';

function machine() {
  let busy = true;
  const { m, audit } = withVerifier(() => (busy ? busyVerdict(0, 'test bound reached') : { ok: true, reason: 'ok', items: [{ ok: true, reason: 'ok' }] }));
  return { m, audit, setBusy: (b: boolean) => (busy = b) };
}

test('busyVerdict is a valid, retryable denial; isRetryable needs ok: false', (t) => {
  const v = busyVerdict(7, 'x');
  t.true(validateVerdict(v).ok);
  t.true(isRetryable(v));
  t.regex(v.reason, /^verifier busy: x$/);
  t.false(isRetryable({ ok: true, retryable: true }));
  t.false(validateVerdict({ ...v, retryable: 'yes' }).ok, 'the validator still checks the field');
});

test('end of boot: -KVM_EAGAIN, the VM keeps running, boot has not ended; the retry ends it', async (t) => {
  const { m, audit, setBusy } = machine();
  t.is(await lockSyntheticKernel(m), 0);
  t.is(await m.cpu.vmcall(HC.HEKI_END_BOOT), -KVM_STATUS.KVM_EAGAIN);
  t.is(m.vmm.core.stopped, undefined, 'a busy verifier is not a refused kernel');
  t.false(m.vmm.core.auth!.bootEnded);
  t.is(m.vmm.log.byReason('heki-denial').length, 0);
  t.like(audit.records()[0], { event: 'verdict', kind: 'kernel-text', ok: false, retryable: true, applied: false });
  setBusy(false);
  t.is(await m.cpu.vmcall(HC.HEKI_END_BOOT), 0);
  t.is(audit.records().length, 2);
  t.false('retryable' in audit.records()[1]!);
});

test('text patch: entries stay "not applied" (not "denied"), bytes unchanged, frames thawed', async (t) => {
  const { m, setBusy } = machine();
  const site = m.kva(LAYOUT.text);
  const batch = encodePatchBatch([{ kind: 'ftrace', site, oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00), newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4) }]);
  m.vmm.core.memory.write(gpa(0x90_0000n), batch);
  t.is(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, 0x90_0000n), -KVM_STATUS.KVM_EAGAIN);
  t.deepEqual(patchStatuses(m.vmm.core.memory.read(gpa(0x90_0000n), batch.length)), [PATCH_STATUS.NOT_APPLIED]);
  t.deepEqual([...m.vmm.core.memory.read(gpa(LAYOUT.text), 5)], [0x0f, 0x1f, 0x44, 0x00, 0x00]);
  t.is(m.vmm.core.ept.get(gpaToGfn(gpa(LAYOUT.text))) & 0x20, 0, 'thawed');
  setBusy(false);
  t.is(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, 0x90_0000n), 0);
  t.deepEqual([...m.vmm.core.memory.read(gpa(LAYOUT.text), 5)], [0xe8, 1, 2, 3, 4]);
});

test('set memory: -KVM_EAGAIN and the permissions are unchanged', async (t) => {
  const { m, audit } = machine();
  const before = m.vmm.core.ept.get(gpaToGfn(gpa(LAYOUT.data)));
  t.is(await m.cpu.vmcall(HC.HEKI_SET_MEMORY, m.kva(LAYOUT.data), 1n, BigInt(MEM_ATTR.READ)), -KVM_STATUS.KVM_EAGAIN);
  t.is(m.vmm.core.ept.get(gpaToGfn(gpa(LAYOUT.data))), before);
  t.like(audit.records()[0], { kind: 'set-memory', retryable: true });
});
