/**
 * Attack (malformed-page-list): KVM_HC_PROTECT_MEMORY with nine malformed page lists, each
 * asking for a kernel text page to become R|W: list unaligned, list outside guest memory, a
 * chain that loops onto itself, npages of 170, a range unaligned, reversed, outside memory, an
 * unknown attribute bit, and W together with X.
 * Expected stop: -KVM_EINVAL for every list, validated whole before anything is applied (so
 * none even reaches the VMM as a heki-configure exit); the text page's EPT bits and bytes
 * unchanged, and a later write to it ends in an `ept-violation` exit.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('malformed page lists are -KVM_EINVAL and unlock nothing', async (t) => {
  const { report, before, after } = await attackOnRealKernel('malformed-page-list', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds'));
      return { gpa, page: memAt(m, gpa & ~0xfffn, 4096), ept: eptAt(m, gpa), configure: m.vmm.log.byReason('heki-configure').length };
    },
    after: (m, b) => ({ page: memAt(m, b.gpa & ~0xfffn, 4096), ept: eptAt(m, b.gpa), configure: m.vmm.log.byReason('heki-configure').length }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EINVAL for all 9 lists/);
  for (const what of [
    'list not page-aligned',
    'list outside guest memory',
    'chain loops onto itself',
    'npages claims 170 entries',
    'range not page-aligned',
    'range reversed',
    'range outside guest memory',
    'unknown attribute bit 5',
    'W together with X',
  ]) {
    t.true(report.detail.includes(`${what}: -KVM_EINVAL`), what);
  }
  t.is(after.configure, before.configure, 'no malformed list reached the VMM');
  t.deepEqual(after.page, before.page);
  t.is(after.ept, before.ept);
  t.is(after.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
});
