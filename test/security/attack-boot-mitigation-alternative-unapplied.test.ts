/**
 * Attack: the attacker owns the guest kernel and its boot code. It reboots the VM (RST_CNT,
 * which the VMM carries out), lets Linux 6.1's boot touch-ups run for its CPU, and then puts
 * the file's original instruction back at an `.altinstructions` site of a spectre/retbleed
 * mitigation the CPU model has (the return thunk's where the model has X86_FEATURE_RETHUNK,
 * the retpoline's on qemu64-up): the mitigation left unapplied, before heki_late_init.
 *
 * Expected stop: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM; the verifier's kernel-text denial
 * names the alternative site and `.altinstructions`; the VMM stops the VM on the heki-denial
 * exit, so boot never ends and the tampered kernel never runs under protection. Run on every
 * shipped CPU model: every one has a mitigation alternative to leave out.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { eachShippedModel } from '../helpers/boot-touchup-attack.ts';

eachShippedModel(needsFixtures(test), 'boot-mitigation-alternative-unapplied', '.altinstructions', {
  'skylake-smp2': { what: /original instruction back at the X86_FEATURE_RETHUNK alternative/ },
  'epyc-smp2': { what: /original instruction back at the X86_FEATURE_RETHUNK alternative/ },
  'qemu64-up': { what: /original instruction back at the X86_FEATURE_RETPOLINE alternative/ },
});
