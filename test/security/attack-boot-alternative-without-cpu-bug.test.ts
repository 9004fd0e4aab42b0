/**
 * Attack: the attacker's boot (a reboot through RST_CNT, then Linux 6.1's touch-ups for its
 * CPU) applies the replacement of a mitigation alternative whose feature the kernel did not
 * set for this CPU: Meltdown's PTI on an AMD model (epyc-smp2, qemu64-up), AMD's untrained
 * return (X86_FEATURE_UNRET) on Intel Skylake. Text another CPU would have, before heki_late_init.
 *
 * Expected stop: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM; the verifier's kernel-text denial
 * names the alternative site and `.altinstructions`; the VMM stops the VM, boot never ends.
 * Run on every shipped CPU model.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { eachShippedModel } from '../helpers/boot-touchup-attack.ts';

eachShippedModel(needsFixtures(test), 'boot-alternative-without-cpu-bug', '.altinstructions', {
  'skylake-smp2': { what: /applied the X86_FEATURE_UNRET alternative, which the kernel did not select for this CPU/ },
  'epyc-smp2': { what: /applied the X86_FEATURE_PTI alternative, which the kernel did not select for this CPU/ },
  'qemu64-up': { what: /applied the X86_FEATURE_PTI alternative, which the kernel did not select for this CPU/ },
});
