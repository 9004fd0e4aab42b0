/**
 * Attack (protect-memory-unlock-text): a well-formed KVM_HC_PROTECT_MEMORY list giving a page
 * of immutable kernel text (commit_creds) R|W.
 * Expected stop: -KVM_EPERM; a `heki-denial` exit of kind immutable naming the frame, what was
 * requested (R|W) and what it has (R|X|IMMUTABLE); the frame's EPT bits and bytes unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('PROTECT_MEMORY cannot unlock immutable text', async (t) => {
  const { report, before, after } = await attackOnRealKernel('protect-memory-unlock-text', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds'));
      return { gpa, page: memAt(m, gpa & ~0xfffn, 4096), ept: eptAt(m, gpa) };
    },
    after: (m, b) => ({ page: memAt(m, b.gpa & ~0xfffn, 4096), ept: eptAt(m, b.gpa), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_PROTECT_MEMORY; heki-denial exit \(immutable frame 0x[0-9a-f]+\)/);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'immutable', frame: Number(before.gpa >> 12n), requested: EPT_R | EPT_W });
  t.is((after.denials[0] as { current: number }).current & (EPT_R | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
  t.deepEqual(after.page, before.page);
  t.is(after.ept, before.ept);
});
