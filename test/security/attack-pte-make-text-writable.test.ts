/**
 * Attack (pte-make-text-writable): replace the page-directory entry over commit_creds (a
 * pointer to a page table of 4 KiB read-only entries) by a writable 2 MiB large page of the
 * same frames, then write to the text.
 * Expected stop: the guest's page walk now allows the write, the EPT does not: an
 * `ept-violation` exit (kernel write) and #PF (ept-violation); the text page and its EPT bits
 * unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('pte-make-text-writable: stopped by the EPT; the text unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('pte-make-text-writable', {
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
  t.regex(report.stop, /^#PF \(ept-violation\) at 0x[0-9a-f]+; ept-violation exit \(kernel write, gpa 0x[0-9a-f]+\)/);
  t.is(after.events.length, 1);
  t.like(after.events[0]!.exit, { gpa: before.gpa + 0x10n, access: 'write', mode: 'kernel', pageWalk: false });
});
