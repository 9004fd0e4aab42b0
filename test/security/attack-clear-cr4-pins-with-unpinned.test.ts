/**
 * Attack (clear-cr4-pins-with-unpinned): one mov to CR4 clears all the pinned bits (SMEP, SMAP,
 * UMIP) and sets the unpinned VME and PCE, hoping the unpinned part lands.
 * Expected stop: #GP (cr-pin); one `heki-denial` exit naming SMEP|SMAP|UMIP as cleared; CR4
 * unchanged in every bit: VME and PCE still clear.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('clearing the CR4 pins while setting VME and PCE changes nothing', async (t) => {
  const { report, before, after } = await attackOnRealKernel('clear-cr4-pins-with-unpinned', {
    before: (m) => m.vmm.bootCpu.readCr(4),
    after: (m) => ({ cr4: m.vmm.bootCpu.readCr(4), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(cr-pin\)/);
  t.is(after.cr4, before);
  t.is(after.cr4 & (CR4.VME | CR4.PCE), 0n, 'the unpinned bits were not set either');
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'cr-pin', cr: 4, cleared: CR4.SMEP | CR4.SMAP | CR4.UMIP });
});
