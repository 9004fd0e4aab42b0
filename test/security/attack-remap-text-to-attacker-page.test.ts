/**
 * Attack (remap-text-to-attacker-page): the attacker copies commit_creds's text page into a
 * page of its own, puts shellcode at the function's entry, points the kernel PTE of that text
 * page at its copy and calls commit_creds.
 * Expected stop: the page walk obeys the attacker and reaches its frame, but the EPT judges
 * that frame: it is data, not executable: an `ept-violation` exit (kernel fetch of the
 * attacker's gpa) and #PF (ept-violation). The real text frame is unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('remap-text-to-attacker-page: stopped by the EPT; the text unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('remap-text-to-attacker-page', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds'));
      return { gpa, page: memAt(m, gpa & ~0xfffn, 4096), ept: eptAt(m, gpa) };
    },
    after: (m, b) => ({ page: memAt(m, b.gpa & ~0xfffn, 4096), ept: eptAt(m, b.gpa), events: m.vmm.log.byReason('ept-violation') }),
  });
  t.true(report.stopped, report.detail);
  t.deepEqual(after.page, before.page, 'the text page is unchanged');
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0xffffffff810d3bc0; ept-violation exit \(kernel fetch/);
  t.is(after.events.length, 1);
  const ev = after.events[0]!.exit;
  t.like(ev, { access: 'fetch', mode: 'kernel', gva: 0xffffffff810d3bc0n });
  t.not(ev.gpa & ~0xfffn, before.gpa & ~0xfffn, 'the fetch reached the attacker frame, not the text');
  t.is(ev.perms & (EPT_XS | EPT_XU), 0, 'the attacker frame is not executable');
});
