/**
 * The stop every refused-text-patch attack must show (the ftrace-*, jump-label-*, kprobe-* and
 * text-patch-* security tests): the text patch is refused with -KVM_EPERM and a `heki-denial`
 * exit (verification of text-patch); one audit record ok=false, applied=false, one item
 * denied, for `reason`, decided by a verifier plugin or by the core itself (a site outside
 * verified text never reaches the verifier); the 8 bytes at the site are unchanged.
 */
import type { ExecutionContext } from 'ava';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';
import { attackOnRealKernel, gpaOf, memAt, verdicts } from './attack-run.ts';

/** Runs attack `name` against the site at `site(m)` and asserts that stop. */
export async function assertTextPatchDenied(
  t: ExecutionContext,
  name: string,
  site: (m: SimulatedMachine) => bigint,
  reason: RegExp,
  decidedBy: 'verifier' | 'core',
): Promise<void> {
  const { report, before, after } = await attackOnRealKernel(name, {
    before: (m) => {
      const gpa = gpaOf(m, site(m));
      return { gpa, bytes: memAt(m, gpa, 8) };
    },
    after: (m, b) => ({ bytes: memAt(m, b.gpa, 8), records: verdicts(m, 'text-patch'), denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial) }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^text patch refused: -KVM_EPERM; heki-denial exit \(verification of text-patch\)/);
  t.deepEqual(after.bytes, before.bytes);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false, denied: 1 });
  t.regex(String(after.records[0]!['reason']), reason);
  if (decidedBy === 'core') t.deepEqual(after.records[0]!['plugins'], ['core']);
  else t.notDeepEqual(after.records[0]!['plugins'], ['core']);
  t.is(after.denials.length, 1);
  t.like(after.denials[0], { kind: 'verification', request: 'text-patch' });
}
