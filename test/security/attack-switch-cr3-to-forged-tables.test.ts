/**
 * Attack (switch-cr3-to-forged-tables): build a new page-table tree that maps commit_creds's
 * text page writable, load it into CR3 (CR3 is the guest's own), write, and switch back.
 * Expected stop: mov to CR3 is allowed; the write ends in an `ept-violation` exit (kernel
 * write) and #PF (ept-violation); the text page and its EPT bits unchanged; CR3 restored.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('switch-cr3-to-forged-tables: stopped by the EPT; the text unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('switch-cr3-to-forged-tables', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds'));
      return { gpa, page: memAt(m, gpa & ~0xfffn, 4096), ept: eptAt(m, gpa), cr3: m.vmm.bootCpu.readCr(3) };
    },
    after: (m, b) => ({
      page: memAt(m, b.gpa & ~0xfffn, 4096),
      ept: eptAt(m, b.gpa),
      events: m.vmm.log.byReason('ept-violation'),
      cr3: m.vmm.bootCpu.readCr(3),
    }),
  });
  t.true(report.stopped, report.detail);
  t.deepEqual(after.page, before.page, 'the text page is unchanged');
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0x[0-9a-f]+; ept-violation exit \(kernel write, gpa 0x[0-9a-f]+\)/);
  t.is(after.events.length, 1);
  t.like(after.events[0]!.exit, { gpa: before.gpa + 0x10n, access: 'write', mode: 'kernel', pageWalk: false });
  t.is(after.cr3, before.cr3);
  t.regex(report.detail, /mov 0x[0-9a-f]+ to CR3: succeeded/);
});
