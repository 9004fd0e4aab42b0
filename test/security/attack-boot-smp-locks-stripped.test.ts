/**
 * Attack: the attacker's boot (a reboot through RST_CNT, then Linux 6.1's touch-ups for its
 * CPU) strips every lock prefix of `.smp_locks` (0xf0 -> 0x3e, the form alternatives_smp_unlock
 * leaves on a uniprocessor) on a guest with two CPUs: its atomics race between vCPUs.
 *
 * Expected stop: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM; the verifier's kernel-text denial
 * names the first lock site and `.smp_locks`; the VMM stops the VM, boot never ends. On
 * qemu64-up (one CPU) boot itself patches the prefixes to UP, so the attack does not apply,
 * and the run says so.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { eachShippedModel } from '../helpers/boot-touchup-attack.ts';

eachShippedModel(needsFixtures(test), 'boot-smp-locks-stripped', '.smp_locks', {
  'skylake-smp2': { what: /stripped every SMP lock prefix \(0xf0 -> 0x3e\) on a multi-CPU guest: \d{4,} site\(s\)/ },
  'epyc-smp2': { what: /stripped every SMP lock prefix \(0xf0 -> 0x3e\) on a multi-CPU guest: \d{4,} site\(s\)/ },
  'qemu64-up': { notApplicable: /: it has 1 CPU present, so boot patches the lock prefixes to UP/ },
});
