/**
 * Attack (overwrite-idtr): the compromised kernel loads IDTR with a table in its own page
 * (lidt), to own every interrupt and exception.
 * Expected stop: the VMM pinned the descriptor tables when it accepted the CR lock: a
 * `dt-write` exit for idtr, the default policy injects #GP (cause `dt-filter`);
 * IDTR unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';

needsFixtures(test)('lidt exits to the VMM, #GP (dt-filter), IDTR unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('overwrite-idtr', {
    before: (m) => m.vmm.bootCpu.sidt(),
    after: (m) => ({ table: m.vmm.bootCpu.sidt(), writes: m.vmm.log.byReason('dt-write') }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(dt-filter\); dt-write exit \(idtr\)/);
  t.deepEqual(after.table, before);
  t.is(after.writes.length, 1);
  t.like(after.writes[0]!.exit, { table: 'idtr', old: before });
  t.not(after.writes[0]!.exit.value.base, before.base);
  t.is(after.writes[0]!.action, 'inject');
});
