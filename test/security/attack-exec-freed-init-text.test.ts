/**
 * Attack (exec-freed-init-text): jump into .init.text (start_kernel), freed at the end of boot:
 * its code is still in memory, and an attacker would reuse it (or its gadgets).
 * Expected stop: heki_late_init locked the freed init memory as data (RW, not executable):
 * whatever the page tables say, the fetch ends in an `ept-violation` exit (kernel fetch) and
 * #PF (ept-violation). The frame is not executable in the EPT.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('a fetch from freed .init.text ends in an EPT violation', async (t) => {
  const { report, after } = await attackOnRealKernel('exec-freed-init-text', {
    after: (m) => {
      const gpa = gpaOf(m, sym(m, 'start_kernel'));
      return { gpa, ept: eptAt(m, gpa), fetches: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch') };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0xffffffff830[0-9a-f]+; ept-violation exit \(kernel fetch/);
  t.regex(report.detail, /freed \.init\.text \(start_kernel\)/);
  t.is(after.fetches.length, 1);
  t.like(after.fetches[0]!.exit, { gpa: after.gpa, access: 'fetch', mode: 'kernel' });
  t.is(after.ept & (EPT_XS | EPT_XU | EPT_IMMUTABLE), 0);
  t.is(after.ept & (EPT_R | EPT_W), EPT_R | EPT_W);
});
