import test from 'ava';
import { bootSynthetic } from '../helpers/synthetic-machine.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { HC, HEKI_ABI_VERSION, KVM_STATUS, PINNABLE } from '../../shared/abi.ts';

const EINVAL = -KVM_STATUS.KVM_EINVAL;

test('flag bit 0 returns the ABI version and pins nothing', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 1n), HEKI_ABI_VERSION);
  t.is(m.vmm.core.pins.get(4), 0n);
});

test('every pinnable bit can be pinned; pins only grow', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, CR0.WP), 0);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), 0);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMAP | CR4.UMIP), 0);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP | CR4.SMAP | CR4.UMIP);
  // A "weaker" request adds nothing and removes nothing.
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.UMIP), 0);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP | CR4.SMAP | CR4.UMIP);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, PINNABLE[4]), 0);
  t.is(m.vmm.core.pins.get(4), PINNABLE[4]);
  t.is(m.vmm.core.pins.get(0), CR0.WP);
});

test('unpinnable bits, other CRs, a zero mask and unknown flags are -KVM_EINVAL', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.VME), EINVAL);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP | CR4.PAE), EINVAL, 'one bad bit spoils the request');
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, CR0.PG), EINVAL);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 3n, 1n), EINVAL);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 8n, 1n), EINVAL);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, 0n), EINVAL);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 2n), EINVAL);
  t.is(m.vmm.core.pins.get(4), 0n);
  t.is(m.vmm.core.pins.get(0), 0n);
  // Bad masks (VME, SMEP|PAE, PG, 0) are pin denials; a bad CR number or flag is not.
  t.is(m.vmm.log.byReason('heki-denial').filter((e) => e.exit.denial.kind === 'bad-pin').length, 4);
});

test('a hypercall from CPL 3 returns -KVM_EPERM and does nothing', async (t) => {
  const m = bootSynthetic();
  m.cpu.setCpl(3);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), -KVM_STATUS.KVM_EPERM);
  t.is(await m.cpu.vmcall(HC.PROTECT_MEMORY, 0x50_0000n), -KVM_STATUS.KVM_EPERM);
  t.is(m.vmm.core.pins.get(4), 0n);
});

test('unknown hypercall numbers return -KVM_ENOSYS', async (t) => {
  const m = bootSynthetic();
  for (const nr of [0, 1, 12, 24, 99, 0x7fffffff, -1]) t.is(await m.cpu.vmcall(nr), -KVM_STATUS.KVM_ENOSYS, `nr ${nr}`);
});

test('the VMM can refuse the lock through the configure exit (-KVM_EPERM, nothing pinned)', async (t) => {
  const m = bootSynthetic({ policy: { 'heki-configure': () => ({ action: 'inject', reason: 'not in this VM' }) } });
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), -KVM_STATUS.KVM_EPERM);
  t.is(m.vmm.core.pins.get(4), 0n);
  t.false(m.vmm.platformPinned);
});

test('without KVM_CAP_HEKI_CONFIGURE the lock is applied without an exit', async (t) => {
  const m = bootSynthetic({ hekiExits: { configure: 0, denial: 0 } });
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), 0);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP);
  t.is(m.vmm.log.events().length, 0);
  t.false(m.vmm.platformPinned, 'the VMM never saw the lock, so it pinned nothing');
  const r = m.cpu.writeCr(4, m.cpu.readCr(4) & ~CR4.SMEP);
  t.true(!r.ok && r.fault.kind === 'fault' && r.fault.cause === 'cr-pin', 'the pin holds even when denials do not exit');
});
