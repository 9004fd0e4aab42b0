/**
 * Attack: kexec into a kernel whose manifest the attacker built and signed with its own key
 * (an "unsigned" kernel: no kernel-vendor key of the keyring vouches for it), for the main
 * slot and for the crash kernel's.
 *
 * Expected stop: the verifier refuses both `kexec-image` requests (manifest signed by unknown
 * key); nothing is staged, a panic finds no crash kernel, and until then the old kernel runs
 * on with every pin and lock.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('a kexec or crash kernel signed by an untrusted key is refused', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  for (const crash of [false, true]) {
    const r = await m.kexec({ signer: 'untrusted', crash });
    t.is(r.outcome, 'denied');
    t.regex(r.reason, new RegExp(`lifecycle: ${crash ? 'crash' : 'kexec'} kernel: manifest signed by unknown key [0-9a-f]{16}`));
  }
  t.is(m.vmm.staged('kexec'), undefined);
  t.is(m.vmm.staged('crash'), undefined);
  t.is(m.audit.records().filter((x) => x['kind'] === 'kexec-image' && x['ok'] === false).length, 2);
  t.is((await m.writeCr(4, { clear: CR4.SMAP })).outcome, 'denied');
  const p = await m.panic();
  t.regex(p.reason, /no crash kernel is loaded: the VM is stopped/, 'no unverified kernel runs on a panic either');
});
