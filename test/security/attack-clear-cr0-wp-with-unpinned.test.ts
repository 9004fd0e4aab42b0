/**
 * Attack (clear-cr0-wp-with-unpinned): one mov to CR0 clears the pinned WP and the unpinned
 * AM, hoping the core applies the unpinned part (Heki v3's KUnit test: a refused write
 * changes nothing, not even the unpinned bits).
 * Expected stop: #GP (cr-pin); a `heki-denial` exit naming only WP as cleared; CR0 unchanged in
 * every bit, AM included.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { CR0 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('clearing CR0.WP with the unpinned AM changes neither', async (t) => {
  const { report, before, after } = await attackOnRealKernel('clear-cr0-wp-with-unpinned', {
    before: (m) => m.vmm.bootCpu.readCr(0),
    after: (m) => ({ cr0: m.vmm.bootCpu.readCr(0), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(cr-pin\)/);
  t.is(before & CR0.AM, CR0.AM, 'the kernel runs with AM set');
  t.is(after.cr0, before, 'neither WP nor AM changed');
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'cr-pin', cr: 0, cleared: CR0.WP });
});
