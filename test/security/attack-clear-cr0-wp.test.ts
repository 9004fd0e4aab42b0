/**
 * Attack (clear-cr0-wp): the compromised kernel clears CR0.WP, so that its read-only mappings
 * (kernel text, rodata) stop protecting it.
 * Expected stop: #GP with cause `cr-pin`; a `heki-denial` exit of kind `cr-pin` (CR0, WP
 * cleared) in the VMM's log; CR0 keeps every bit, WP set, and the pin is still there.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { CR0 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('clearing CR0.WP takes #GP (cr-pin) and a heki-denial exit; CR0 unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('clear-cr0-wp', {
    before: (m) => m.vmm.bootCpu.readCr(0),
    after: (m) => ({ cr0: m.vmm.bootCpu.readCr(0), pin: m.vmm.core.pins.get(0), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(cr-pin\); heki-denial exit \(cr-pin CR0\)/);
  t.is(after.cr0, before);
  t.not(after.cr0 & CR0.WP, 0n);
  t.is(after.pin & CR0.WP, CR0.WP);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'cr-pin', cr: 0, cleared: CR0.WP });
});
