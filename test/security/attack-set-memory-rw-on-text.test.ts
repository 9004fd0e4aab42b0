/**
 * Attack (set-memory-rw-on-text): set_memory_rw on a page of kernel text (commit_creds), then
 * KVM_HC_HEKI_SET_MEMORY(R|W) directly (no X, so W^X does not stop it in the core).
 * Expected stop: set_memory_rw asks for R|W|X: -KVM_EINVAL (W^X, the core); the direct R|W
 * request is denied by the verifier (the page is IMMUTABLE): -KVM_EPERM, a `heki-denial` exit,
 * an audit record ok=false; the text byte and the frame's EPT bits (R|X|IMMUTABLE) unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym, verdicts } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('set_memory_rw on immutable text is refused; the text stays read-only', async (t) => {
  const { report, before, after } = await attackOnRealKernel('set-memory-rw-on-text', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds') + 0x10n);
      return { gpa, page: memAt(m, gpa & ~0xfffn, 4096), ept: eptAt(m, gpa) };
    },
    after: (m, b) => ({ page: memAt(m, b.gpa & ~0xfffn, 4096), ept: eptAt(m, b.gpa), records: verdicts(m, 'set-memory') }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_SET_MEMORY/);
  t.regex(report.detail, /set_memory_rw\(0x[0-9a-f]+\): set_memory_rw: the hypervisor refused \(-KVM_EINVAL\)/);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false });
  t.regex(String(after.records[0]!['reason']), /immutable/);
  t.deepEqual(after.page, before.page);
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
});
