/**
 * Attack (ftrace-non-site): ask for an ftrace patch (a call to ftrace_caller) 0x10 bytes past
 * commit_creds's ftrace site: inside the function, not an `__mcount_loc` site.
 * Expected stop: the verifier's ftrace plugin denies ("is not an ftrace site"): -KVM_EPERM, a
 * `heki-denial` exit (verification of text-patch), an audit record ok=false; the bytes at the
 * site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, gpaOf, memAt, verdicts } from '../helpers/attack-run.ts';
import { nonSiteAddress } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('ftrace-non-site: the text patch is refused and the site is unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('ftrace-non-site', {
    before: (m) => {
      const gpa = gpaOf(m, nonSiteAddress(m.kernel!));
      return { gpa, bytes: memAt(m, gpa, 8) };
    },
    after: (m, b) => ({ bytes: memAt(m, b.gpa, 8), records: verdicts(m, 'text-patch'), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^text patch refused: -KVM_EPERM; heki-denial exit \(verification of text-patch\)/);
  t.deepEqual(after.bytes, before.bytes);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, denied: 1 });
  t.regex(String(after.records[0]!['reason']), /ftrace: 0x[0-9a-f]+ is not an ftrace site/);
  t.notDeepEqual(after.records[0]!['plugins'], ['core']);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'verification', request: 'text-patch' });
});
