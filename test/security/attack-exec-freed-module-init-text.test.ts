/**
 * Attack (exec-freed-module-init-text): note the frame of failover's `.init.text` while the
 * module loads; once its init returned and the loader freed the init layout, fetch the old
 * init code through an executable alias of that frame, then write shellcode into the freed
 * frame through the direct map (allowed: it is ordinary memory now) and fetch it through a
 * fresh alias.
 * Expected stop: the end of init (KVM_HC_HEKI_FREE_MODULE_INIT, allowed by the verifier and
 * audited) made the frame data-only (R|W, not executable, not immutable) and took it out of
 * the core's module record and code map: both fetches end in an `ept-violation` exit (kernel
 * fetch) and #PF (ept-violation).
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';
import { gpa, gpaToGfn } from '../../shared/addr.ts';

needsFixtures(test)("a module's freed init text no longer executes, old code or shellcode, through any alias", async (t) => {
  const { report, after } = await attackOnRealKernel('exec-freed-module-init-text', {
    after: (m) => {
      const fetches = m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch');
      const rec = m.vmm.core.auth?.modules.get('failover');
      return {
        fetches,
        ept: fetches[0] ? eptAt(m, fetches[0].exit.gpa) : -1,
        frees: verdicts(m, 'module-init-free'),
        frames: rec ? [...rec.frames.keys()] : [],
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0xffffc9[0-9a-f]+; ept-violation exit \(kernel fetch/);
  t.regex(report.detail, /shellcode written through the direct map: succeeded/);
  t.is(after.frees.length, 1);
  t.like(after.frees[0], { ok: true, applied: true, subject: 'failover' });
  t.is(after.fetches.length, 2, 'the old init code and the shellcode');
  t.is(after.fetches[0]!.exit.gpa & ~0xfffn, after.fetches[1]!.exit.gpa & ~0xfffn);
  t.is(after.ept & (EPT_R | EPT_W | EPT_XS | EPT_XU | EPT_IMMUTABLE), EPT_R | EPT_W);
  t.false(after.frames.includes(gpaToGfn(gpa(after.fetches[0]!.exit.gpa))), 'the frame left the module');
});
