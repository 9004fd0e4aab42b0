/**
 * Attack (jump-label-foreign-target): patch a 5-byte jump label (a NOP now) into a jmp to
 * commit_creds instead of the jump entry's own target.
 * Expected stop: the verifier's jump-label plugin denies ("jump to foreign target"):
 * -KVM_EPERM, a `heki-denial` exit, an audit record ok=false; the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, gpaOf, memAt, verdicts } from '../helpers/attack-run.ts';
import { nopJumpLabel } from '../../guest/attacks/text-patching.ts';

needsFixtures(test)('jump-label-foreign-target: the text patch is refused and the site is unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('jump-label-foreign-target', {
    before: (m) => {
      const gpa = gpaOf(m, nopJumpLabel(m.kernel!).site);
      return { gpa, bytes: memAt(m, gpa, 8) };
    },
    after: (m, b) => ({ bytes: memAt(m, b.gpa, 8), records: verdicts(m, 'text-patch'), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^text patch refused: -KVM_EPERM; heki-denial exit \(verification of text-patch\)/);
  t.deepEqual(after.bytes, before.bytes);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, denied: 1 });
  t.regex(String(after.records[0]!['reason']), /jump-label: jump-label site 0x[0-9a-f]+: jump to foreign target 0xffffffff810d3bc0/);
  t.notDeepEqual(after.records[0]!['plugins'], ['core']);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'verification', request: 'text-patch' });
});
