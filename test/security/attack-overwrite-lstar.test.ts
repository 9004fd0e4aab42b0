/**
 * Attack (overwrite-lstar): the compromised kernel points LSTAR at its own page, to own every
 * system call.
 * Expected stop: the VMM pinned the MSR when it accepted the CR lock: an `msr-write` exit for
 * LSTAR, the default policy injects #GP (cause `msr-filter`); LSTAR keeps its value.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, sym } from '../helpers/attack-run.ts';
import { MSR } from '../../shared/x86/cpu.ts';

needsFixtures(test)('wrmsr LSTAR exits to the VMM, #GP (msr-filter), value unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('overwrite-lstar', {
    before: (m) => {
      const v = m.vmm.bootCpu.rdmsr(MSR.LSTAR);
      if (!v.ok) throw new Error('cannot read the MSR');
      return v.value;
    },
    after: (m) => {
      const v = m.vmm.bootCpu.rdmsr(MSR.LSTAR);
      return { value: v.ok ? v.value : undefined, writes: m.vmm.log.byReason('msr-write'), entry: sym(m, 'entry_SYSCALL_64') };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(msr-filter\); msr-write exit \(LSTAR\)/);
  t.is(after.value, before);
  t.is(after.value, after.entry, 'LSTAR still points at entry_SYSCALL_64');
  t.is(after.writes.length, 1);
  t.is(after.writes[0]!.exit.msr, MSR.LSTAR);
  t.not(after.writes[0]!.exit.value, before);
  t.is(after.writes[0]!.action, 'inject');
});
