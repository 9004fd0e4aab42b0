/**
 * Attack (exec-kernel-heap): plant shellcode in a page from the kernel page allocator (kmalloc
 * memory, reached through the direct map) and jump to it.
 * Expected stop: the fetch takes #PF (nx) as mapped; with NX cleared in the direct map's 2 MiB
 * entry it reaches the EPT, which refuses: an `ept-violation` exit (kernel fetch) and #PF
 * (ept-violation). The frame is not executable in the EPT before or after.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt } from '../helpers/attack-run.ts';
import { PAGE_OFFSET } from '../../guest/kernel/layout.ts';
import { EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('exec-kernel-heap: the fetch ends in an EPT violation; the frame stays non-executable', async (t) => {
  const { report, after } = await attackOnRealKernel('exec-kernel-heap', {
    after: (m) => {
      const fetches = m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch');
      const gpa = fetches.at(-1)?.exit.gpa ?? -1n;
      return { fetches, gpa, ept: gpa >= 0n ? eptAt(m, gpa) : -1 };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0xffff888[0-9a-f]+; ept-violation exit \(kernel fetch, gpa 0x[0-9a-f]+\)/);
  t.regex(report.detail, /fetch as mapped: #PF \(nx\).*NX cleared in the level-2 entry/);
  const planted = /planted [0-9a-f ]+ at (0x[0-9a-f]+)/.exec(report.detail);
  t.truthy(planted);
  t.is(after.gpa, BigInt(planted![1]!) - PAGE_OFFSET, 'the refused fetch is the one at the planted address');
  t.is(after.fetches.length, 1);
  t.like(after.fetches[0]!.exit, { access: 'fetch', mode: 'kernel', pageWalk: false });
  t.is(after.ept & (EPT_XS | EPT_XU), 0);
  t.is(after.ept & (EPT_R | EPT_W), EPT_R | EPT_W, 'a data frame: readable and writable');
});
