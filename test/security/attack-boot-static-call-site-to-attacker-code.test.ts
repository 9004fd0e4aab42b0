/**
 * Attack: the attacker's boot (a reboot through RST_CNT, then Linux 6.1's touch-ups for its
 * CPU) points an inline `.static_call_sites` site at code of its choosing: `call commit_creds`
 * instead of the call static_call_init() wrote to its key's function, before heki_late_init.
 *
 * Expected stop: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM; the verifier's kernel-text denial
 * names the static-call site and `.static_call_sites`; the VMM stops the VM, boot never ends.
 * Run on every shipped CPU model.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { eachShippedModel } from '../helpers/boot-touchup-attack.ts';

const what = /pointed the static call site 0x[0-9a-f]+ at commit_creds/;
eachShippedModel(needsFixtures(test), 'boot-static-call-site-to-attacker-code', '.static_call_sites', {
  'skylake-smp2': { what },
  'epyc-smp2': { what },
  'qemu64-up': { what },
});
