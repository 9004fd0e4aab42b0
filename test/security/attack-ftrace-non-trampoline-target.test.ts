/**
 * Attack (ftrace-non-trampoline-target): turn commit_creds's ftrace site into a call to
 * native_write_cr4 (a gadget that writes CR4), not to an ftrace trampoline.
 * Expected stop: the verifier's ftrace plugin denies ("which is not an ftrace trampoline"):
 * -KVM_EPERM, a `heki-denial` exit, an audit record ok=false; the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, gpaOf, memAt, verdicts } from '../helpers/attack-run.ts';
import { ftraceSiteOf } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('ftrace-non-trampoline-target: the text patch is refused and the site is unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('ftrace-non-trampoline-target', {
    before: (m) => {
      const gpa = gpaOf(m, ftraceSiteOf(m.kernel!, 'commit_creds'));
      return { gpa, bytes: memAt(m, gpa, 8) };
    },
    after: (m, b) => ({ bytes: memAt(m, b.gpa, 8), records: verdicts(m, 'text-patch'), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^text patch refused: -KVM_EPERM; heki-denial exit \(verification of text-patch\)/);
  t.deepEqual(after.bytes, before.bytes);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, denied: 1 });
  t.regex(String(after.records[0]!['reason']), /ftrace: ftrace site 0x[0-9a-f]+: call to 0xffffffff81049230, which is not an ftrace trampoline/);
  t.notDeepEqual(after.records[0]!['plugins'], ['core']);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'verification', request: 'text-patch' });
});
