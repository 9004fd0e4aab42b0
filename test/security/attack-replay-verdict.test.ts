/**
 * Attack (replay-verdict): the verifier channel answers a genuine text patch (ftrace on
 * commit_creds) with a verdict stamped for another request, as a replayed or misrouted verdict
 * would be; the verifier itself would allow the patch, so the verdict says ok.
 * Expected stop: the link applies only a verdict for this very request: fail closed with
 * "verifier unavailable: answer for request N, not M" (-KVM_EPERM, a `heki-denial` exit, an
 * audit record ok=false); the site unchanged. The same patch asked again on an honest channel
 * is allowed, so the refusal was the replay's.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, gpaOf, memAt, sym, verdicts } from '../helpers/attack-run.ts';
import { NOP5, encodeCall32 } from '../../shared/x86/patch-encodings.ts';

needsFixtures(test)('a verdict for another request is never applied', async (t) => {
  const { report, before, after } = await attackOnRealKernel('replay-verdict', {
    before: (m) => {
      const site = sym(m, 'commit_creds');
      return { site, gpa: gpaOf(m, site), bytes: memAt(m, gpaOf(m, site), 5) };
    },
    after: (m, b) => ({ bytes: memAt(m, b.gpa, 5), records: verdicts(m, 'text-patch'), call: encodeCall32(b.site, sym(m, 'ftrace_caller')) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /fail closed on text-patch: verifier unavailable: answer for request \d+, not \d+/);
  t.deepEqual([...before.bytes], [...NOP5]);
  t.is(after.records.length, 2);
  t.like(after.records[0], { ok: false, applied: false });
  t.regex(String(after.records[0]!['reason']), /^verifier unavailable: answer for request \d+, not \d+/);
  t.like(after.records[1], { ok: true, applied: true }, 'the honest retry was allowed');
  t.regex(report.detail, /bytes were 0f 1f 44 00 00, are 0f 1f 44 00 00/);
  t.deepEqual([...after.bytes], [...after.call], 'only the honest retry changed the site');
});
