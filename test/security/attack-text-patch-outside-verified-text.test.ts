/**
 * Attack (text-patch-outside-verified-text): send KVM_HC_HEKI_TEXT_PATCH with a "patch" whose
 * site is sys_call_table in .rodata, to have the hypervisor write read-only data for it.
 * Expected stop: the core refuses without asking the verifier: the site is not in its map of
 * verified text. -KVM_EPERM, a `heki-denial` exit, an audit record ok=false from plugin `core`;
 * the bytes at the site unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, gpaOf, memAt, verdicts } from '../helpers/attack-run.ts';

needsFixtures(test)('text-patch-outside-verified-text: the text patch is refused and the site is unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('text-patch-outside-verified-text', {
    before: (m) => {
      const gpa = gpaOf(m, m.image.systemMap.address('sys_call_table')!);
      return { gpa, bytes: memAt(m, gpa, 8) };
    },
    after: (m, b) => ({ bytes: memAt(m, b.gpa, 8), records: verdicts(m, 'text-patch'), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^text patch refused: -KVM_EPERM; heki-denial exit \(verification of text-patch\)/);
  t.deepEqual(after.bytes, before.bytes);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, denied: 1 });
  t.regex(String(after.records[0]!['reason']), /^site 0xffffffff82000360 is not in verified kernel or module text$/);
  t.deepEqual(after.records[0]!['plugins'], ['core']);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'verification', request: 'text-patch' });
});
