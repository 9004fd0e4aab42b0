/**
 * Attack (unknown-hypercall): issue hypercalls the ABI does not define (0, just past the highest
 * defined number, further out, 999, 0x7fffffff; computed from shared/abi.ts) with arguments
 * pointing at kernel text, hoping one of them is an undocumented backdoor; then check that the
 * text is still locked.
 * Expected stop: -KVM_ENOSYS for each, and nothing changes: no exit, no audit record, no
 * verifier request, the text's EPT bits and bytes unchanged (the later write ends in an
 * `ept-violation` exit, the only event of the attack).
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { UNKNOWN_HYPERCALLS } from '../../guest/attacks/hypercall-abuse.ts';
import { isHypercallNr } from '../../shared/abi.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('undefined hypercalls return -KVM_ENOSYS and change nothing', async (t) => {
  const { report, before, after } = await attackOnRealKernel('unknown-hypercall', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds'));
      return {
        gpa,
        page: memAt(m, gpa & ~0xfffn, 4096),
        ept: eptAt(m, gpa),
        audit: m.audit.records().length,
        requests: m.link.stats.requests,
        events: m.vmm.log.events().length,
      };
    },
    after: (m, b) => ({
      page: memAt(m, b.gpa & ~0xfffn, 4096),
      ept: eptAt(m, b.gpa),
      audit: m.audit.records().length,
      requests: m.link.stats.requests,
      kinds: [
        ...new Set(
          m.vmm.log
            .events()
            .slice(b.events)
            .map((e) => (e.kind === 'exit' ? e.exit.reason : e.kind)),
        ),
      ],
    }),
  });
  t.true(UNKNOWN_HYPERCALLS.length >= 4);
  t.false(UNKNOWN_HYPERCALLS.some((nr) => isHypercallNr(nr)));
  t.true(report.stopped, report.detail);
  t.regex(report.stop, new RegExp(`^-KVM_ENOSYS for all ${UNKNOWN_HYPERCALLS.length} hypercalls`));
  for (const nr of UNKNOWN_HYPERCALLS) t.regex(report.detail, new RegExp(`hypercall ${nr}: -KVM_ENOSYS`));
  t.is(after.audit, before.audit);
  t.is(after.requests, before.requests);
  t.deepEqual(after.kinds, ['ept-violation'], 'the only events are the final write check');
  t.deepEqual(after.page, before.page);
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
});
