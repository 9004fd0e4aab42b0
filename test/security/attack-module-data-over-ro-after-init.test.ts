/**
 * Attack (module-data-over-ro-after-init): load crc7 with a module descriptor that places its
 * writable `.gnu.linkonce.this_module` section over the page of security_hook_heads
 * (ro_after_init), hoping the module grant (data: R|W) unlocks kernel data.
 * Expected stop: the core refuses before any verification, because the descriptor names an
 * IMMUTABLE frame: -KVM_EPERM, no verifier request and so no module-load audit record; the
 * page keeps its EPT bits (R|IMMUTABLE) and its bytes; a later write to it ends in an
 * `ept-violation` exit.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym, verdicts } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('a module descriptor over ro_after_init is refused by the core; the page stays locked', async (t) => {
  const { report, before, after } = await attackOnRealKernel('module-data-over-ro-after-init', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'security_hook_heads')) & ~0xfffn;
      return { gpa, page: memAt(m, gpa, 4096), ept: eptAt(m, gpa), requests: m.link.stats.requests };
    },
    after: (m, b) => ({
      page: memAt(m, b.gpa, 4096),
      ept: eptAt(m, b.gpa),
      records: verdicts(m, 'module-load'),
      requests: m.link.stats.requests,
      writes: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'write'),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_LOAD_MODULE/);
  t.is(after.records.length, 0, 'the core refused before asking the verifier');
  t.is(after.requests, before.requests);
  t.deepEqual(after.page, before.page);
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_W | EPT_IMMUTABLE), EPT_R | EPT_IMMUTABLE);
  t.is(after.writes.length, 1);
  t.is(after.writes[0]!.exit.gpa & ~0xfffn, before.gpa);
});
