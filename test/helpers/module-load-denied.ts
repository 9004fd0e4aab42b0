/**
 * The stop every refused-module attack must show (the load-module-* security tests): the
 * verifier denies crc7's module-load request for `reason`: -KVM_EPERM from the hypercall, a
 * `heki-denial` exit of kind verification (module-load), one audit record ok=false and
 * applied=false; no module is recorded by the core or the guest, and a fetch from each of
 * crc7's three frames, tried by the attack itself, was refused.
 */
import type { ExecutionContext } from 'ava';
import { attackOnRealKernel, eptAt, verdicts } from './attack-run.ts';
import { EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

/** Runs attack `name` and asserts that stop, with the verifier's reason matching `reason`. */
export async function assertModuleLoadDenied(t: ExecutionContext, name: string, reason: RegExp): Promise<void> {
  const { report, after } = await attackOnRealKernel(name, {
    after: (m) => ({
      records: verdicts(m, 'module-load'),
      denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
      coreModules: [...(m.vmm.core.auth?.modules.keys() ?? [])],
      guestModules: [...(m.kernel?.modules.loaded.keys() ?? [])],
      // The attack's own check: a fetch through a fresh executable alias of every section frame.
      probed: m.vmm.log
        .byReason('ept-violation')
        .filter((e) => e.exit.access === 'fetch')
        .map((e) => eptAt(m, e.exit.gpa)),
    }),
  });
  t.true(report.stopped, report.detail);
  // KVM: -KVM_EPERM from the hypercall; Hyper-V VSM (HEKI_HYPERVISOR=hyperv): LVBS's -EPERM from the VTL call.
  t.regex(
    report.stop,
    /^(-KVM_EPERM from KVM_HC_HEKI_LOAD_MODULE|-EPERM from VSM_VTL_CALL_FUNC_ID_VALIDATE_MODULE); heki-denial exit \(verification of module-load\)/,
  );
  t.regex(report.detail, /executable afterwards: none/);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, subject: 'crc7' });
  t.regex(String(after.records[0]!['reason']), reason);
  t.like(after.denials[0], { kind: 'verification', request: 'module-load', subject: 'crc7' });
  t.deepEqual(after.coreModules, []);
  t.deepEqual(after.guestModules, []);
  t.is(after.probed.length, 3, "a fetch from each of crc7's three frames was refused");
  for (const ept of after.probed) t.is(ept & (EPT_XS | EPT_XU), 0);
}
