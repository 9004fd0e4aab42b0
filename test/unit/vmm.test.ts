import test from 'ava';
import { gva, gpaToGfn, gpa } from '../../shared/addr.ts';
import { bootSynthetic } from '../helpers/synthetic-machine.ts';
import { EXIT_HANDLERS, PINNED_MSRS } from '../../hypervisor/index.ts';
import { EXIT_REASONS } from '../../shared/exit-reasons.ts';
import { CR4, MSR } from '../../shared/x86/cpu.ts';
import { HC, MEM_ATTR } from '../../shared/abi.ts';
import { LAYOUT, lockSyntheticKernel, protect } from '../helpers/synthetic-machine.ts';

test('the exit-handler table covers every exit reason', async (t) => {
  t.deepEqual(Object.keys(EXIT_HANDLERS).sort(), [...EXIT_REASONS].sort());
});

test('accepting the CR lock pins every platform MSR the VMM names', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), 0);
  for (const msr of PINNED_MSRS) {
    const r = m.cpu.wrmsr(msr, 0n);
    t.true(!r.ok && r.fault.kind === 'fault' && r.fault.cause === 'msr-filter', `MSR 0x${msr.toString(16)}`);
  }
  t.true(m.cpu.wrmsr(MSR.GS_BASE, 0xffff_8880_0000_0000n).ok, 'per-CPU GS base stays writable');
  t.true(m.cpu.rdmsr(MSR.LSTAR).ok, 'reads are not filtered');
});

test('a policy answering resume to an EPT violation is overruled to inject', async (t) => {
  const m = bootSynthetic({ policy: { 'ept-violation': () => ({ action: 'resume' }) } });
  t.is(await lockSyntheticKernel(m), 0);
  m.vmm.core.ept.set(gpaToGfn(gpa(LAYOUT.user)), MEM_ATTR.READ);
  m.cpu.setAc(true); // pass SMAP so that the EPT is what refuses
  const r = m.cpu.write(gva(LAYOUT.userVa), Uint8Array.of(1));
  t.false(r.ok);
  const ev = m.vmm.log.byReason('ept-violation');
  t.is(ev[0]!.action, 'inject');
  t.regex(ev[0]!.note ?? '', /overruled/);
});

test('a policy may allow a filtered CR write, or stop, and may skip logging', async (t) => {
  const allow = bootSynthetic({ policy: { 'cr-write': () => ({ action: 'resume', log: false }) } });
  allow.vmm.core.setCrFilter({ cr0: 0n, cr4: CR4.VME, cr3: false, descriptorTables: false });
  t.true(allow.cpu.writeCr(4, allow.cpu.readCr(4) | CR4.VME).ok);
  t.is(allow.vmm.log.events().length, 0);
  t.is(allow.vmm.log.unlogged, 1);

  const deny = bootSynthetic();
  deny.vmm.core.setCrFilter({ cr0: 0n, cr4: CR4.VME, cr3: false, descriptorTables: false });
  const r = deny.cpu.writeCr(4, deny.cpu.readCr(4) | CR4.VME);
  t.true(!r.ok && r.fault.kind === 'fault' && r.fault.cause === 'cr-filter');
  t.is(deny.cpu.readCr(4) & CR4.VME, 0n);
});

test('a throwing policy stops the VM instead of guessing', async (t) => {
  const m = bootSynthetic({
    policy: {
      'heki-configure': () => {
        throw new Error('policy bug');
      },
    },
  });
  t.true((await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP)) < 0);
  t.regex(m.vmm.core.stopped ?? '', /policy bug/);
});

test('only a VMM reset clears pins, locks and filters', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP), 0);
  t.is(await lockSyntheticKernel(m), 0);
  m.vmm.reset();
  t.is(m.vmm.core.pins.get(4), 0n);
  t.deepEqual(m.vmm.core.ept.entries(), []);
  t.false(m.vmm.platformPinned);
  t.is(m.cpu.readCr(0) & (1n << 31n), 0n, 'the vCPU is back in its RESET state');
  t.is(
    await protect(m, [{ pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE }]),
    0,
    'a new boot may set up its own locks',
  );
});
