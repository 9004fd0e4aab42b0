/**
 * Attack: kexec into a kernel image with one byte flipped (a patched kernel), handing the
 * hypervisor the vendor's genuine, correctly signed manifest with it.
 *
 * Expected stop: the verifier refuses the `kexec-image` request (the image's SHA-256 is not
 * the manifest's vmlinuzSha256), KVM_HC_HEKI_KEXEC_LOAD returns -KVM_EPERM, the VMM stages
 * nothing, KVM_HC_HEKI_KEXEC is refused, and the old kernel runs on with every pin and lock.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { CR4 } from '../../shared/x86/cpu.ts';
import { HC } from '../../shared/abi.ts';

needsFixtures(test)('a kexec image with one byte flipped is refused; the old kernel keeps every protection', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const before = m.vmm.core.saveState();
  const r = await m.kexec({ tamper: 'image' });
  t.is(r.outcome, 'denied');
  t.regex(r.reason, /-KVM_EPERM: lifecycle: kexec kernel: image SHA-256 [0-9a-f]{64} differs from the manifest's vmlinuzSha256 [0-9a-f]{64}/);
  const v = m.audit.records().find((x) => x['kind'] === 'kexec-image');
  t.like(v, { ok: false, applied: false, slot: 'kexec', plugins: ['lifecycle'] });
  t.like(m.vmm.log.byReason('heki-denial').at(-1), { exit: { denial: { kind: 'verification', request: 'kexec-image' } } });
  t.is(m.vmm.staged('kexec'), undefined);
  t.is(m.vmm.log.byReason('kexec-load').length, 0, 'nothing reached the VMM to stage');
  t.is((await m.hypercall(HC.HEKI_KEXEC, [])).outcome, 'denied');
  t.deepEqual(m.vmm.core.saveState(), before, 'every pin, lock and record as before');
  t.is((await m.writeCr(4, { clear: CR4.SMEP })).outcome, 'denied');
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');
});
