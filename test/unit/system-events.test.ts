/**
 * Lifecycle requests on the core (synthetic machine): the platform's reset, pvpanic and ACPI
 * sleep registers decoded into `system-event` exits, the VMM's decision (accept: the VM is
 * parked; refuse: the write does nothing), KVM_HC_HEKI_KEXEC refused with nothing staged, the
 * VMM's reset clearing what only it may clear, and the state ioctls' invariants.
 */
import { gpaToGfn, gpa } from '../../shared/addr.ts';
import test from 'ava';
import { bootSynthetic, lockSyntheticKernel, LAYOUT } from '../helpers/synthetic-machine.ts';
import { HC, KEXEC_FLAG, KVM_STATUS } from '../../shared/abi.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { ACPI_PM1A_CNT_PORT, PVPANIC_PORT, RESET_CONTROL_PORT, decodePortWrite, pm1SleepValue } from '../../shared/platform-io.ts';
import { EPT_FROZEN } from '../../hypervisor/ept/permissions.ts';

test('the platform registers: which writes ask for which event', (t) => {
  t.deepEqual(decodePortWrite(RESET_CONTROL_PORT, 0x02, 1), { kind: 'none' }, 'SYS_RST alone only prepares');
  t.like(decodePortWrite(RESET_CONTROL_PORT, 0x06, 1), { kind: 'event', type: 'reset' });
  t.like(decodePortWrite(RESET_CONTROL_PORT, 0x04, 1), { kind: 'event', type: 'reset' });
  t.deepEqual(decodePortWrite(RESET_CONTROL_PORT, 0x06, 2), { kind: 'none' }, 'RST_CNT is a byte register');
  t.like(decodePortWrite(PVPANIC_PORT, 1, 1), { kind: 'event', type: 'crash' });
  t.deepEqual(decodePortWrite(PVPANIC_PORT, 2, 1), { kind: 'none' });
  t.like(decodePortWrite(ACPI_PM1A_CNT_PORT, pm1SleepValue('S4'), 2), { kind: 'event', type: 'hibernate' });
  t.like(decodePortWrite(ACPI_PM1A_CNT_PORT, pm1SleepValue('S5'), 2), { kind: 'event', type: 'shutdown' });
  t.deepEqual(decodePortWrite(ACPI_PM1A_CNT_PORT, 2 << 10, 2), { kind: 'none' }, 'no SLP_EN, no sleep');
  t.deepEqual(decodePortWrite(0x80, 0xff, 1), { kind: 'none' }, 'an unclaimed port');
});

test('out is privileged and checks its operands', (t) => {
  const m = bootSynthetic();
  m.cpu.setCpl(3);
  const r = m.cpu.out(RESET_CONTROL_PORT, 6);
  t.true(!r.ok && r.fault.kind === 'fault' && r.fault.cause === 'privileged');
  m.cpu.setCpl(0);
  const big = m.cpu.out(0x80, 0x100, 1);
  t.true(!big.ok && big.fault.kind === 'fault' && big.fault.cause === 'bad-operand');
  const port = m.cpu.out(0x10000, 0, 1);
  t.true(!port.ok && port.fault.kind === 'fault' && port.fault.cause === 'bad-operand');
  t.true(m.cpu.out(0x80, 0x42, 1).ok, 'an unclaimed port takes the write');
  t.is(m.vmm.log.events().length, 0);
});

test('an accepted reset parks the VM until the VMM carries it out; pins stay until then', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), 0);
  const r = m.cpu.out(RESET_CONTROL_PORT, 0x06);
  t.true(!r.ok && r.fault.kind === 'stopped');
  t.like(m.vmm.pendingSystemEvent, { reason: 'system-event', type: 'reset' });
  t.regex(m.vmm.core.parked ?? '', /reset requested/);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP, 'the request itself clears nothing');
  const w = m.cpu.writeCr(4, m.cpu.readCr(4) & ~CR4.SMEP);
  t.true(!w.ok && w.fault.kind === 'stopped', 'no instruction of the old kernel runs');
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, CR0.WP), -KVM_STATUS.KVM_EPERM);
  t.like(m.vmm.log.byReason('system-event')[0], { action: 'resume' });
  t.like(m.vmm.takePendingSystemEvent(), { type: 'reset' });
  m.vmm.reset();
  t.is(m.vmm.core.pins.get(4), 0n);
  t.is(m.vmm.core.stopped, undefined);
});

test('a policy may refuse a reset: the write does nothing and every pin stays', async (t) => {
  const m = bootSynthetic({ policy: { 'system-event': () => ({ action: 'inject' }) } });
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), 0);
  t.true(m.cpu.out(RESET_CONTROL_PORT, 0x06).ok);
  t.is(m.vmm.pendingSystemEvent, undefined);
  t.is(m.vmm.core.stopped, undefined);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP);
  t.like(m.vmm.log.byReason('system-event')[0], { action: 'inject' });
});

test('KVM_HC_HEKI_KEXEC with nothing staged is refused; the VM is not parked', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.HEKI_KEXEC), -KVM_STATUS.KVM_EPERM);
  t.is(m.vmm.core.stopped, undefined);
  t.regex(m.vmm.log.byReason('system-event')[0]?.note ?? '', /no kexec kernel is loaded/);
});

test('KVM_HC_HEKI_KEXEC_LOAD needs a verifier, and checks its flags first', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.HEKI_KEXEC_LOAD, 0n, BigInt(KEXEC_FLAG.ON_CRASH)), -KVM_STATUS.KVM_EOPNOTSUPP);
});

test('S4 and S5 are lifecycle events too; pvpanic is a crash', (t) => {
  for (const [port, value, size, type] of [
    [ACPI_PM1A_CNT_PORT, pm1SleepValue('S4'), 2, 'hibernate'],
    [ACPI_PM1A_CNT_PORT, pm1SleepValue('S5'), 2, 'shutdown'],
    [PVPANIC_PORT, 1, 1, 'crash'],
  ] as const) {
    const m = bootSynthetic();
    t.false(m.cpu.out(port, value, size).ok);
    t.is(m.vmm.pendingSystemEvent?.type, type);
  }
});

test('the VMM reset clears pins, EPT locks, filters and the platform pins; nothing else does', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, CR0.WP), 0);
  t.is(await lockSyntheticKernel(m), 0);
  t.true(m.vmm.platformPinned);
  // Re-locking weaker changes nothing: pins only grow, immutable pages never change.
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, 0n), -KVM_STATUS.KVM_EINVAL);
  m.vmm.reset({ clearMemory: false });
  t.is(m.vmm.core.pins.get(0), 0n);
  t.deepEqual(m.vmm.core.ept.entries(), []);
  t.false(m.vmm.platformPinned);
  t.false(m.vmm.core.crFilter.descriptorTables);
  t.is(m.vmm.core.msrFilter.ranges.length, 0);
});

test('core state: saved runs of EPT attributes load only into a fresh VM, and give back the same state', async (t) => {
  const a = bootSynthetic();
  t.is(await a.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP | CR4.SMAP), 0);
  t.is(await lockSyntheticKernel(a), 0);
  const saved = a.vmm.core.saveState();
  if (!saved.ok) throw new Error(saved.error.message);
  t.true(saved.value.ept.length < 10, 'runs, not one entry per frame');
  const refused = a.vmm.core.loadState(saved.value);
  t.like(refused, { ok: false, error: { kind: 'not-fresh' } });
  const b = bootSynthetic();
  b.vmm.reset();
  const loaded = b.vmm.core.loadState(saved.value);
  t.true(loaded.ok);
  const again = b.vmm.core.saveState();
  t.deepEqual(again.ok && again.value, saved.value);
  const w = b.cpu.writeCr(4, b.cpu.readCr(4) & ~CR4.SMEP);
  t.true(!w.ok && w.fault.kind === 'fault' && w.fault.cause === 'cr-pin');
  const wrong = bootSynthetic({ memoryBytes: 128n << 20n });
  t.like(wrong.vmm.core.loadState(saved.value), { ok: false, error: { kind: 'mismatch' } });
});

test('core state is not saved while a frame is frozen for a verification', (t) => {
  const m = bootSynthetic();
  // No verifier: freeze through the EPT the way the authenticator does, then check the
  // saved state never records FROZEN.
  m.vmm.core.ept.freeze(gpaToGfn(gpa(LAYOUT.data)));
  const s = m.vmm.core.saveState();
  t.true(s.ok && s.value.ept.every(([, , p]) => (p & EPT_FROZEN) === 0));
});
