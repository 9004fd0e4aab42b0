/**
 * Attack (unknown-hypercall): issue hypercalls the core does not implement (21, 22, 64, 999,
 * 0x7fffffff) with arguments pointing at kernel text, hoping one of them is an undocumented
 * backdoor; then check that the text is still locked.
 * Expected stop: -KVM_ENOSYS for each, and nothing changes: no exit, no audit record, no
 * verifier request, the text's EPT bits and bytes unchanged (the later write ends in an
 * `ept-violation` exit).
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('unknown hypercalls return -KVM_ENOSYS and change nothing', async (t) => {
  const { report, before, after } = await attackOnRealKernel('unknown-hypercall', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds'));
      return { gpa, page: memAt(m, gpa & ~0xfffn, 4096), ept: eptAt(m, gpa), audit: m.audit.records().length, requests: m.link.stats.requests };
    },
    after: (m, b) => ({
      page: memAt(m, b.gpa & ~0xfffn, 4096),
      ept: eptAt(m, b.gpa),
      audit: m.audit.records().length,
      requests: m.link.stats.requests,
      reasons: [...new Set(m.vmm.log.exits().map((e) => e.exit.reason))],
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_ENOSYS for all 5/);
  for (const nr of [21, 22, 64, 999, 2147483647]) t.regex(report.detail, new RegExp(`hypercall ${nr}: -KVM_ENOSYS`));
  t.is(after.audit, before.audit);
  t.is(after.requests, before.requests);
  t.deepEqual(after.reasons, ['heki-configure', 'ept-violation'], 'only boot-time configuration and the final write check');
  t.deepEqual(after.page, before.page);
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
});
