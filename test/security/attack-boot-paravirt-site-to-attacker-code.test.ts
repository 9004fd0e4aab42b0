/**
 * Attack: the attacker's boot (a reboot through RST_CNT, then Linux 6.1's touch-ups for its
 * CPU) points a `.parainstructions` site at code of its choosing: `call commit_creds` where
 * paravirt patching left the native instruction, before heki_late_init.
 *
 * Expected stop: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM; the verifier's kernel-text denial
 * names the paravirt site and `.parainstructions`; the VMM stops the VM, boot never ends. Run
 * on every shipped CPU model; and once under a VMM policy that does not stop the VM, where the
 * attack must report that it got through (it checks its effect, not the messages).
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { eachShippedModel } from '../helpers/boot-touchup-attack.ts';
import { runAttack } from '../../checks/attacks.ts';
import { createMachineDetailed } from '../../machine/machine.ts';
import type { VmmPolicy } from '../../hypervisor/vmm/policy.ts';
import { err, ok } from '../../shared/result.ts';

const what = /pointed the paravirt site 0x[0-9a-f]+ at commit_creds/;
eachShippedModel(needsFixtures(test), 'boot-paravirt-site-to-attacker-code', '.parainstructions', {
  'skylake-smp2': { what },
  'epyc-smp2': { what },
  'qemu64-up': { what },
});

// The attack checks its effect, not the messages: under a VMM policy that lets a VM whose
// booted text was refused run on (inject instead of stop), the tampered kernel executes, and
// the attack must say it was not stopped.
needsFixtures(test)('boot-paravirt-site-to-attacker-code is not stopped when the VMM lets the refused kernel run on', async (t) => {
  const lenient: VmmPolicy = { 'heki-denial': () => ({ action: 'inject', log: true }) };
  const r = await runAttack(
    'boot-paravirt-site-to-attacker-code',
    {},
    {
      machine: async (config) => {
        const m = await createMachineDetailed({ ...config, policy: lenient });
        if (!m.ok) return err(m.error.message);
        const b = await m.value.boot();
        if (b.outcome !== 'allowed') {
          await m.value.dispose();
          return err(b.reason);
        }
        return ok(m.value);
      },
    },
  );
  if (!r.ok) return void t.fail(r.error.message);
  const report = r.value.report;
  t.false(report.stopped, report.stop);
  t.true(report.applicable);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_END_BOOT, but the VM runs on: the vCPU executes the tampered text at 0x[0-9a-f]+/);
});
