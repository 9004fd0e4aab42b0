/**
 * The VMM's named copy paths: everything is reachable outside protected mode; in protected
 * mode a private page fails loudly, is logged and audited, and nothing is copied.
 */
import { forgedGpa } from '../helpers/forged-addr.ts';
import { gfn, gpa } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, bootSynthetic, protect } from '../helpers/synthetic-machine.ts';
import { HC, KVM_MAP_GPA_RANGE } from '../../shared/abi.ts';
import { AuditLog } from '../../hypervisor/audit/audit-log.ts';
import { HOST_COPY_PATHS } from '../../hypervisor/vmm/host-memory.ts';

const PAGE = 0x70_0000n;

test('outside protected mode every path may copy any page', (t) => {
  const m = bootSynthetic();
  const host = m.vmm.hostMemory;
  t.false(host.protected);
  for (const path of HOST_COPY_PATHS) {
    t.true(host.copyToGuest(path, gpa(PAGE), Uint8Array.of(1, 2, 3)).ok);
    const r = host.copyFromGuest(path, gpa(PAGE), 3);
    t.true(r.ok);
    if (r.ok) t.deepEqual([...r.value], [1, 2, 3]);
  }
  t.is(m.vmm.ownAudit.records().length, 0);
});

test('a range outside guest memory is a typed error, not a throw', (t) => {
  const m = bootSynthetic();
  const r = m.vmm.hostMemory.copyFromGuest('snapshot', gpa(m.vmm.core.memory.size - 2n), 4);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'outside-memory');
    t.regex(r.error.message, /^snapshot: host read of 0x3fffffe\+4 is outside guest memory/);
  }
  t.false(m.vmm.hostMemory.copyToGuest('debug', forgedGpa(-1n), new Uint8Array(1)).ok);
  t.false(m.vmm.hostMemory.copyFromGuest('debug', gpa(0n), -1).ok);
});

test('protected mode: a copy that touches one private page copies nothing, names path, gpa and frame', async (t) => {
  const m = bootSynthetic({ protectedMemory: true });
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, PAGE, 1n, BigInt(KVM_MAP_GPA_RANGE.DECRYPTED)), 0);
  const host = m.vmm.hostMemory;
  m.vmm.core.memory.write(gpa(PAGE + 0x1000n), Uint8Array.of(9, 9));
  // [shared page][private page]: a write straddling both must not touch the shared half.
  const w = host.copyToGuest('migration', gpa(PAGE + 0xffen), Uint8Array.of(1, 2, 3, 4));
  t.false(w.ok);
  if (!w.ok && w.error.kind === 'private-page') {
    t.is(w.error.frame, gfn(0x701));
    t.is(w.error.path, 'migration');
    t.is(w.error.access, 'write');
    t.regex(w.error.message, /^migration: host write of 0x700ffe\+4 refused: frame 0x701 is private guest memory/);
  } else t.fail('expected a private-page error');
  t.deepEqual([...m.vmm.core.memory.read(gpa(PAGE + 0xffen), 4)], [0, 0, 9, 9]);
  const ev = m.vmm.log.byKind('host-access-refused');
  t.is(ev.length, 1);
  t.like(ev[0], { path: 'migration', access: 'write', gpa: PAGE + 0xffen, len: 4, frame: 0x701 });
  t.like(m.vmm.ownAudit.records()[0], { event: 'host-access-refused', vm: 'vm0', path: 'migration', access: 'write', gpa: '0x700ffe', frame: 0x701 });
});

test("protected mode: refusals go to the core's audit log once a verifier is attached", (t) => {
  const m = bootSynthetic({ protectedMemory: true, name: 'guest-a' });
  t.false(m.vmm.hostMemory.copyFromGuest('snapshot', gpa(0n), 8).ok);
  t.is(m.vmm.ownAudit.records()[0]!['vm'], 'guest-a');
  const audit = AuditLog.inMemory();
  m.vmm.core.attachVerifier({ vm: 'vm-7', audit, kernelRegions: [], port: { verify: () => Promise.reject(new Error('unused')) } });
  t.is(m.vmm.audit, audit);
  t.false(m.vmm.hostMemory.copyFromGuest('snapshot', gpa(0n), 8).ok);
  t.like(audit.records()[0], { event: 'host-access-refused', vm: 'vm-7', path: 'snapshot', access: 'read' });
  t.is(m.vmm.ownAudit.records().length, 1);
});

test('the core itself is not a host copy path: page lists in private memory still work', async (t) => {
  const m = bootSynthetic({ protectedMemory: true });
  t.is(await protect(m, [{ pa: LAYOUT.data, epa: LAYOUT.data + 0x1000n, permissions: 1 }]), 0);
  t.is(m.vmm.log.byKind('host-access-refused').length, 0);
});
