/**
 * Attack (alias-write-protected-page): map commit_creds's text frame a second time, at a fresh
 * vmalloc address, writable (the attacker writes the PTE; the kernel's Heki bookkeeping never
 * hears of it), and write through that alias.
 * Expected stop: an `ept-violation` exit (kernel write of the text frame) and #PF
 * (ept-violation); the text page and its EPT bits (R|X|IMMUTABLE) unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('alias-write-protected-page: stopped by the EPT; the text unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('alias-write-protected-page', {
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
