/**
 * Attack (protect-memory-widen-data-exec): after boot, a well-formed KVM_HC_PROTECT_MEMORY list
 * giving an attacker data page that holds shellcode R|X (bypassing the verifier, which only
 * HEKI_SET_MEMORY consults).
 * Expected stop: the VMM accepts the configuration request (a `heki-configure` exit), but after
 * the end of boot PROTECT_MEMORY may only take permissions away: -KVM_EPERM; the frame stays
 * R|W; the attacker's fetch ends in an `ept-violation` exit.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt } from '../helpers/attack-run.ts';
import { EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';
import { MEM_ATTR } from '../../shared/abi.ts';

needsFixtures(test)('PROTECT_MEMORY cannot make data executable after boot', async (t) => {
  const { report, after } = await attackOnRealKernel('protect-memory-widen-data-exec', {
    before: (m) => m.vmm.log.byReason('heki-configure').length,
    after: (m, b) => {
      const fetch = m.vmm.log
        .byReason('ept-violation')
        .filter((e) => e.exit.access === 'fetch')
        .at(-1);
      return {
        configure: m.vmm.log
          .byReason('heki-configure')
          .slice(b)
          .map((e) => e.exit.request),
        fetch,
        ept: fetch ? eptAt(m, fetch.exit.gpa) : -1,
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_PROTECT_MEMORY/);
  t.is(after.configure.length, 1);
  const req = after.configure[0]!;
  t.is(req.kind, 'protect-memory');
  if (req.kind === 'protect-memory') {
    t.is(req.ranges.length, 1);
    t.is(req.ranges[0]!.permissions, MEM_ATTR.READ | MEM_ATTR.EXEC);
    t.is(after.fetch?.exit.gpa, req.ranges[0]!.pa, 'the refused fetch is at the page the attacker asked to make executable');
  }
  t.is(after.ept & (EPT_R | EPT_W | EPT_XS | EPT_XU), EPT_R | EPT_W);
});
