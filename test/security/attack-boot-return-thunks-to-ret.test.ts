/**
 * Attack: the attacker's boot (a reboot through RST_CNT, then Linux 6.1's touch-ups for its
 * CPU) turns every `jmp <return thunk>` of `.return_sites` into `ret; int3` (what 6.1 writes on
 * a CPU without X86_FEATURE_RETHUNK) on a model whose capability words ask for the thunk:
 * retbleed/SRSO's return mitigation stripped from the whole kernel before heki_late_init.
 *
 * Expected stop: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM; the verifier's kernel-text denial
 * names the first return site and `.return_sites`; the VMM stops the VM, boot never ends.
 * skylake-smp2 and epyc-smp2 have RETHUNK; qemu64-up does not, and the run says the attack
 * does not apply there instead of passing it.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { eachShippedModel } from '../helpers/boot-touchup-attack.ts';

eachShippedModel(needsFixtures(test), 'boot-return-thunks-to-ret', '.return_sites', {
  'skylake-smp2': { what: /turned every return thunk jump into ret: \d{4,} site\(s\)/ },
  'epyc-smp2': { what: /turned every return thunk jump into ret: \d{4,} site\(s\)/ },
  'qemu64-up': { notApplicable: /: it has no X86_FEATURE_RETHUNK$/ },
});
