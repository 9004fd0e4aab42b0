/**
 * Attack (overwrite-sysenter-eip): the compromised kernel points SYSENTER_EIP at its own page,
 * to own every sysenter entry.
 * Expected stop: the VMM pinned the MSR when it accepted the CR lock: an `msr-write` exit for
 * SYSENTER_EIP, the default policy injects #GP (cause `msr-filter`); SYSENTER_EIP keeps its
 * value.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { MSR } from '../../shared/x86/cpu.ts';

needsFixtures(test)('wrmsr SYSENTER_EIP exits to the VMM, #GP (msr-filter), value unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('overwrite-sysenter-eip', {
    before: (m) => {
      const v = m.vmm.bootCpu.rdmsr(MSR.IA32_SYSENTER_EIP);
      if (!v.ok) throw new Error('cannot read the MSR');
      return v.value;
    },
    after: (m) => {
      const v = m.vmm.bootCpu.rdmsr(MSR.IA32_SYSENTER_EIP);
      return { value: v.ok ? v.value : undefined, writes: m.vmm.log.byReason('msr-write') };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(msr-filter\); msr-write exit \(IA32_SYSENTER_EIP\)/);
  t.is(after.value, before);
  t.is(after.writes.length, 1);
  t.is(after.writes[0]!.exit.msr, MSR.IA32_SYSENTER_EIP);
  t.not(after.writes[0]!.exit.value, before);
  t.is(after.writes[0]!.action, 'inject');
});
