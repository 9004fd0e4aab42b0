/**
 * Attack (crash-verifier-mid-request): the verifier VM is made to crash (its process exits)
 * while it decides an unsigned crc7.ko, hoping the core fails open; then the attacker tries
 * the same module again with the restarted verifier.
 * Expected stop: fail closed: the request in flight is denied with "verifier unavailable:
 * worker exited ..." (-KVM_EPERM, a `heki-denial` exit, an audit record ok=false); the link
 * restarts the verifier (its state replayed), which denies the unsigned module on its merits;
 * a genuine crc7 then loads, so the verifier is back; the unsigned module never loads.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, verdicts } from '../helpers/attack-run.ts';

needsFixtures(test)('a verifier crash mid-request fails closed; the restarted verifier still denies', async (t) => {
  const { report, after } = await attackOnRealKernel('crash-verifier-mid-request', {
    after: (m) => ({ records: verdicts(m, 'module-load'), stats: { ...m.link.stats }, coreModules: [...(m.vmm.core.auth?.modules.keys() ?? [])] }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_LOAD_MODULE \(fail closed\)/);
  t.regex(report.stop, /fail closed on module-load: verifier unavailable: worker exited with code 70/);
  t.is(after.records.length, 3);
  t.like(after.records[0], { ok: false, applied: false });
  t.regex(String(after.records[0]!['reason']), /^verifier unavailable: worker exited with code 70/);
  t.like(after.records[1], { ok: false, applied: false });
  t.regex(String(after.records[1]!['reason']), /module crc7 is not signed/);
  t.like(after.records[2], { ok: true, applied: true, subject: 'crc7' });
  t.is(after.stats.failClosed, 1);
  t.true(after.stats.restarts >= 1);
  t.deepEqual(after.coreModules, ['crc7'], 'only the genuine module is loaded');
});
