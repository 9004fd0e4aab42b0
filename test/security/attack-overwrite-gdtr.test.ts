/**
 * Attack (overwrite-gdtr): the compromised kernel loads GDTR with a table in its own page
 * (lgdt), to own every segment descriptor.
 * Expected stop: the VMM pinned the descriptor tables when it accepted the CR lock: a
 * `dt-write` exit for gdtr, the default policy injects #GP (cause `dt-filter`);
 * GDTR unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';

needsFixtures(test)('lgdt exits to the VMM, #GP (dt-filter), GDTR unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('overwrite-gdtr', {
    before: (m) => m.vmm.bootCpu.sgdt(),
    after: (m) => ({ table: m.vmm.bootCpu.sgdt(), writes: m.vmm.log.byReason('dt-write') }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#GP \(dt-filter\); dt-write exit \(gdtr\)/);
  t.deepEqual(after.table, before);
  t.is(after.writes.length, 1);
  t.like(after.writes[0]!.exit, { table: 'gdtr', old: before });
  t.not(after.writes[0]!.exit.value.base, before.base);
  t.is(after.writes[0]!.action, 'inject');
});
