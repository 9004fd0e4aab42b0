/**
 * Attack (use-after-unload-exec): load crc7 and keep an executable alias of its text frame
 * (which executes while the module is loaded); unload crc7; write shellcode into the freed
 * frame through the direct map and run it through the stale alias.
 * Expected stop: the unload made every frame of the module data-only (R|W, not executable,
 * not immutable): the fetch through the stale alias, and through a fresh one, ends in an
 * `ept-violation` exit (kernel fetch) and #PF (ept-violation).
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)("a freed module's text frame no longer executes, even through a stale alias", async (t) => {
  const { report, after } = await attackOnRealKernel('use-after-unload-exec', {
    after: (m) => {
      const fetches = m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch');
      return {
        fetches,
        ept: fetches[0] ? eptAt(m, fetches[0].exit.gpa) : -1,
        loads: verdicts(m, 'module-load'),
        unloads: verdicts(m, 'module-unload'),
        coreModules: m.vmm.core.auth?.modules.size,
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0xffffc9[0-9a-f]+; ept-violation exit \(kernel fetch/);
  t.regex(report.detail, /fetch while loaded succeeded/);
  t.like(after.loads[0], { ok: true, applied: true });
  t.like(after.unloads[0], { ok: true });
  t.is(after.coreModules, 0);
  t.is(after.fetches.length, 2, 'the stale alias and a fresh one');
  t.is(after.fetches[0]!.exit.gpa & ~0xfffn, after.fetches[1]!.exit.gpa & ~0xfffn);
  t.is(after.ept & (EPT_R | EPT_W | EPT_XS | EPT_XU | EPT_IMMUTABLE), EPT_R | EPT_W);
});
