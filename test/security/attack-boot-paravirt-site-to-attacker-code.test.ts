/**
 * Attack: the attacker's boot (a reboot through RST_CNT, then Linux 6.1's touch-ups for its
 * CPU) points a `.parainstructions` site at code of its choosing: `call commit_creds` where
 * paravirt patching left the native instruction, before heki_late_init.
 *
 * Expected stop: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM; the verifier's kernel-text denial
 * names the paravirt site and `.parainstructions`; the VMM stops the VM, boot never ends. Run
 * on every shipped CPU model.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { eachShippedModel } from '../helpers/boot-touchup-attack.ts';

const what = /pointed the paravirt site 0x[0-9a-f]+ at commit_creds/;
eachShippedModel(needsFixtures(test), 'boot-paravirt-site-to-attacker-code', '.parainstructions', {
  'skylake-smp2': { what },
  'epyc-smp2': { what },
  'qemu64-up': { what },
});
