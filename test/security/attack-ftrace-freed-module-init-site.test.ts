/**
 * Attack (ftrace-freed-module-init-site): after failover's init returned and its init layout
 * was freed, ftrace-patch a call to ftrace_caller into an `__mcount_loc` site of its
 * `.init.text` (ftrace_free_mem() dropped that record; the attacker sends the patch anyway).
 * Expected stop: the core refuses without asking the verifier, since the freed init text left
 * its map of verified text: -KVM_EPERM, a `heki-denial` exit, one audit record ok=false from
 * plugin `core`; the bytes in the freed frame unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, verdicts } from '../helpers/attack-run.ts';

needsFixtures(test)('ftrace-freed-module-init-site: the patch is refused by the core and the freed frame is unchanged', async (t) => {
  const { report, after } = await attackOnRealKernel('ftrace-freed-module-init-site', {
    after: (m) => ({
      records: verdicts(m, 'text-patch'),
      frees: verdicts(m, 'module-init-free'),
      denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^text patch refused: -KVM_EPERM; heki-denial exit \(verification of text-patch\)/);
  t.regex(report.detail, /bytes were (0f 1f 44 00 00), are \1;/, 'the freed site still holds the NOP ftrace left');
  t.like(after.frees[0], { ok: true, applied: true });
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, denied: 1 });
  t.regex(String(after.records[0]!['reason']), /^site 0x[0-9a-f]+ is not in verified kernel or module text$/);
  t.deepEqual(after.records[0]!['plugins'], ['core']);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'verification', request: 'text-patch' });
});
