/**
 * Attack: load a genuine crash kernel (which is allowed) and then run it without a panic,
 * through KVM_HC_HEKI_KEXEC, to get a fresh boot on demand; and replace it with a tampered one.
 *
 * Expected stop: KVM_HC_HEKI_KEXEC runs only the kexec slot: with only a crash kernel staged
 * the VMM refuses the `system-event` (note "no kexec kernel is loaded"), the guest gets
 * -KVM_EPERM and keeps running, protections intact; the tampered crash image is refused by
 * the verifier and the verified one stays staged. The crash kernel runs on a panic only.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { HC } from '../../shared/abi.ts';
import { CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('the crash kernel runs only on a panic', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  t.is((await m.kexec({ crash: true })).outcome, 'allowed');
  const staged = m.vmm.staged('crash');
  t.truthy(staged);
  const r = await m.hypercall(HC.HEKI_KEXEC, []);
  t.is(r.outcome, 'denied');
  t.regex(r.reason, /-KVM_EPERM/);
  t.regex(m.vmm.log.byReason('system-event').at(-1)?.note ?? '', /no kexec kernel is loaded/);
  t.is(m.vmm.core.stopped, undefined, 'the guest runs on');
  t.is(m.audit.records().filter((x) => x['event'] === 'lifecycle').length, 0, 'no reset happened');
  t.is((await m.writeCr(4, { clear: CR4.SMEP })).outcome, 'denied');
  const tampered = await m.kexec({ crash: true, tamper: 'image' });
  t.is(tampered.outcome, 'denied');
  t.is(m.vmm.staged('crash'), staged, 'the verified crash kernel stays staged');
  t.is((await m.panic()).outcome, 'allowed');
  t.like(
    m.audit
      .records()
      .filter((x) => x['event'] === 'lifecycle')
      .at(-1),
    { type: 'crash', result: 'kexec', sha256: staged!.sha256 },
  );
});
