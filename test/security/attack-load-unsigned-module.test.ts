/**
 * Attack (load-unsigned-module): load crc7.ko with its signature trailer stripped.
 * Expected stop: the verifier denies the module-load request (module-signature: module crc7 is
 * not signed): -KVM_EPERM, a `heki-denial` exit of kind verification (module-load), an audit
 * record ok=false and applied=false; no module is recorded by the core and none of the frames
 * the sections occupied became executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('load-unsigned-module: the verifier denies the load; nothing becomes executable', async (t) => {
  const { report, after } = await attackOnRealKernel('load-unsigned-module', {
    after: (m) => ({
      records: verdicts(m, 'module-load'),
      denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
      coreModules: [...(m.vmm.core.auth?.modules.keys() ?? [])],
      guestModules: [...(m.kernel?.modules.loaded.keys() ?? [])],
      // The attack's own check: a fetch through a fresh executable alias of every section frame.
      probed: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch').map((e) => eptAt(m, e.exit.gpa)),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_LOAD_MODULE; heki-denial exit \(verification of module-load\)/);
  t.regex(report.detail, /executable afterwards: none/);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, subject: 'crc7' });
  t.regex(String(after.records[0]!['reason']), /^module-signature: module crc7 is not signed/);
  t.like(after.denials[0], { kind: 'verification', request: 'module-load', subject: 'crc7' });
  t.deepEqual(after.coreModules, []);
  t.deepEqual(after.guestModules, []);
  t.is(after.probed.length, 3, "a fetch from each of crc7's three frames was refused");
  for (const ept of after.probed) t.is(ept & (EPT_XS | EPT_XU), 0);
});
