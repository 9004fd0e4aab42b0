/**
 * Attack (relock-cr-weaker): after boot the kernel asks KVM_HC_LOCK_CR_UPDATE again with a
 * weaker pin set for CR4 (SMEP only) and clears SMAP and UMIP; then for CR0 (nothing) and
 * clears WP.
 * Expected stop: pins only grow: the weaker request is accepted (a `heki-configure` exit) but
 * removes nothing; the mask-0 request is -KVM_EINVAL with a `heki-denial` exit of kind
 * bad-pin; the clears take #GP (cr-pin) with `heki-denial` exits; pins and registers unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('a weaker re-lock removes no pin; clearing SMAP, UMIP and WP is still refused', async (t) => {
  const { report, before, after } = await attackOnRealKernel('relock-cr-weaker', {
    before: (m) => ({ cr0: m.vmm.bootCpu.readCr(0), cr4: m.vmm.bootCpu.readCr(4), configure: m.vmm.log.byReason('heki-configure').length }),
    after: (m) => ({
      cr0: m.vmm.bootCpu.readCr(0),
      cr4: m.vmm.bootCpu.readCr(4),
      pins: [m.vmm.core.pins.get(0), m.vmm.core.pins.get(4)],
      configure: m.vmm.log.byReason('heki-configure').map((e) => e.exit.request),
      denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^pins only grow: #GP \(cr-pin\); heki-denial exit \(cr-pin CR4\)/);
  t.regex(report.detail, /LOCK_CR_UPDATE\(CR4, SMEP\): 0 from KVM_HC_LOCK_CR_UPDATE/);
  t.regex(report.detail, /LOCK_CR_UPDATE\(CR0, nothing\): -KVM_EINVAL/);
  t.deepEqual(after.pins, [CR0.WP, CR4.SMEP | CR4.SMAP | CR4.UMIP]);
  t.is(after.cr0, before.cr0);
  t.is(after.cr4, before.cr4);
  t.like(after.configure[before.configure], { kind: 'lock-cr', cr: 4, mask: CR4.SMEP });
  t.is(after.denials.length, 3);
  t.like(after.denials[0], { kind: 'cr-pin', cr: 4, cleared: CR4.SMAP | CR4.UMIP });
  t.like(after.denials[1], { kind: 'bad-pin', cr: 0, mask: 0n }, 'pinning nothing is a bad pin request');
  t.like(after.denials[2], { kind: 'cr-pin', cr: 0, cleared: CR0.WP });
});
