/**
 * Attack (exec-module-data): load crc7 (genuine), plant shellcode in its data
 * (.gnu.linkonce.this_module page) and jump to it.
 * Expected stop: the fetch takes #PF (nx) as mapped; with NX cleared in the page-table entry it
 * reaches the EPT, which refuses: an `ept-violation` exit (kernel fetch) and #PF
 * (ept-violation). The frame is not executable in the EPT before or after.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, loadedModule } from '../helpers/attack-run.ts';
import { MODULE_DATA_OFFSET } from '../../guest/attacks/data-execution.ts';
import { EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('exec-module-data: the fetch ends in an EPT violation; the frame stays non-executable', async (t) => {
  const { report, after } = await attackOnRealKernel('exec-module-data', {
    after: (m) => {
      const fetches = m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch');
      const gpa = fetches.at(-1)?.exit.gpa ?? -1n;
      const expected = gpaOf(m, loadedModule(m, 'crc7').image.groups.find((g) => g.group === 'rw')!.start + MODULE_DATA_OFFSET);
      return { fetches, gpa, expected, ept: gpa >= 0n ? eptAt(m, gpa) : -1 };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0x[0-9a-f]+; ept-violation exit \(kernel fetch, gpa 0x[0-9a-f]+\)/);
  t.regex(report.detail, /crc7 data: planted/);
  t.is(after.fetches.length, 1);
  t.like(after.fetches[0]!.exit, { access: 'fetch', mode: 'kernel', pageWalk: false });
  t.is(after.gpa, after.expected, 'the refused fetch is the one at the attacked address');
  t.is(after.ept & (EPT_XS | EPT_XU), 0);
  t.is(after.ept & (EPT_R | EPT_W), EPT_R | EPT_W, 'a data frame: readable and writable');
});
