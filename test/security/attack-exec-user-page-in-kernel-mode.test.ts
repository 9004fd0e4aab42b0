/**
 * Attack (exec-user-page-in-kernel-mode): ret2usr. The attacker maps shellcode in a user page
 * (US set in the page tables), tries to clear SMEP, and fetches the page at CPL 0.
 * Expected stop: clearing SMEP takes #GP (cr-pin) with a `heki-denial` exit; the kernel-mode
 * fetch from the user page takes #PF with cause `smep` in the guest's own checks, before the
 * EPT is consulted (no ept-violation exit for it). CR4.SMEP stays set.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { USER_PAGE_VA } from '../../guest/attacks/data-execution.ts';
import { CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('a kernel-mode fetch from a user page takes #PF (smep); SMEP cannot be cleared', async (t) => {
  const { report, after } = await attackOnRealKernel('exec-user-page-in-kernel-mode', {
    after: (m) => ({
      cr4: m.vmm.bootCpu.readCr(4),
      denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
      fetches: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch'),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, new RegExp(`^#PF \\(smep\\) at 0x${USER_PAGE_VA.toString(16)}`));
  t.regex(report.detail, /clearing SMEP: #GP \(cr-pin\)/);
  t.is(after.cr4 & CR4.SMEP, CR4.SMEP);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'cr-pin', cr: 4, cleared: CR4.SMEP });
  t.is(after.fetches.length, 0, 'SMEP stops the fetch before the EPT sees it');
});
