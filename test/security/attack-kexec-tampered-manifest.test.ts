/**
 * Attack: kexec with the kernel's manifest edited (one byte of its body changed, here a digit
 * of the vmlinuzSha256 it vouches for), so that it would name another image.
 *
 * Expected stop: the verifier refuses the `kexec-image` request because the manifest's
 * signature no longer matches its body; KVM_HC_HEKI_KEXEC_LOAD returns -KVM_EPERM, nothing is
 * staged, and the old kernel keeps every protection.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { CR0 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('a kexec manifest with one byte changed is refused; the old kernel keeps every protection', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const before = m.vmm.core.saveState();
  const r = await m.kexec({ tamper: 'manifest' });
  t.is(r.outcome, 'denied');
  t.regex(r.reason, /lifecycle: kexec kernel: manifest signature does not match its body/);
  t.like(
    m.audit.records().find((x) => x['kind'] === 'kexec-image'),
    { ok: false, applied: false },
  );
  t.is(m.vmm.staged('kexec'), undefined);
  t.deepEqual(m.vmm.core.saveState(), before);
  t.is((await m.writeCr(0, { clear: CR0.WP })).outcome, 'denied');
});
