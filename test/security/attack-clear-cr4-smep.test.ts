/**
 * Attack (clear-cr4-smep): the compromised kernel clears CR4.SMEP, so that it can execute code
 * placed in user pages (ret2usr).
 * Expected stop: #GP with cause `cr-pin`; a `heki-denial` exit of kind `cr-pin` (CR4, SMEP
 * cleared) in the VMM's log; CR4 keeps every bit and the pin is still there.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('clearing CR4.SMEP takes #GP (cr-pin) and a heki-denial exit; CR4 unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('clear-cr4-smep', {
    before: (m) => m.vmm.bootCpu.readCr(4),
    after: (m) => ({ cr4: m.vmm.bootCpu.readCr(4), pin: m.vmm.core.pins.get(4), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(cr-pin\); heki-denial exit \(cr-pin CR4\)/);
  t.is(after.cr4, before);
  t.is(after.cr4 & CR4.SMEP, CR4.SMEP);
  t.is(after.pin & CR4.SMEP, CR4.SMEP);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'cr-pin', cr: 4, cleared: CR4.SMEP });
});
