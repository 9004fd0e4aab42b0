/**
 * Attack: change a migration snapshot in transit: one byte of the saved guest memory.
 *
 * Expected stop: the destination VMM checks the snapshot against the source key its operator
 * trusts before it starts anything: the memory section's SHA-256 is not the signed one, so it
 * is refused with that reason (kind `digest`), no destination VM runs, and the source VM runs
 * on with every protection.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('a snapshot changed in transit is refused; the source runs on', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const source = m.vmm;
  const link = m.link;
  const r = await m.migrate({ tamper: true });
  t.is(r.outcome, 'denied');
  t.regex(
    r.reason,
    /^the destination refused the snapshot \(digest\): section memory: SHA-256 [0-9a-f]{64} differs from the signed [0-9a-f]{64}: the image was modified after it was signed; the source VM runs on$/,
  );
  t.is(m.vmm, source, 'the machine is still the source');
  t.is(m.link, link);
  t.is(m.vmm.core.stopped, undefined);
  t.is((await m.writeCr(4, { clear: CR4.SMEP })).outcome, 'denied');
  t.is((await m.ftrace('enable', 'tcp_*')).outcome, 'allowed', 'the source guest goes on');
});
