/**
 * `--hypervisor` on the commands that boot: a bad value is exit 2 naming the allowed ones
 * before any machine starts; `heki attacks --hypervisor hyperv` reports an attack the LVBS ABI
 * cannot express as not applicable with the reason (in --json too) and boots nothing for it.
 */
import test from 'ava';
import { heki } from '../helpers/cli.ts';
import { needsFixtures } from '../helpers/fixtures.ts';

for (const cmd of [['attacks', 'clear-cr0-wp'], ['demo'], ['run', 'scenarios/demo.yaml']]) {
  test(`heki ${cmd[0]} --hypervisor xen is exit 2 naming kvm and hyperv`, async (t) => {
    const r = await heki([...cmd, '--hypervisor', 'xen']);
    t.is(r.code, 2);
    t.regex(r.err, /--hypervisor: hypervisor must be one of kvm, hyperv, got "xen"/);
  });
}

test('heki demo --core --hypervisor hyperv is exit 2: the core demo is the KVM one', async (t) => {
  const r = await heki(['demo', '--core', '--hypervisor', 'hyperv']);
  t.is(r.code, 2);
  t.regex(r.err, /--hypervisor does not apply/);
});

needsFixtures(test)('heki attacks --hypervisor hyperv --json: an ftrace attack is applicable: false, with the reason; exit 0', async (t) => {
  const r = await heki(['attacks', 'ftrace-non-site', '--hypervisor', 'hyperv', '--json']);
  t.is(r.code, 0, r.err);
  const j = JSON.parse(r.out) as {
    attacks: Array<{ name: string; stopped: boolean; applicable: boolean; stop: string }>;
    notApplicable: number;
    hypervisor: string;
  };
  t.is(j.hypervisor, 'hyperv');
  t.is(j.notApplicable, 1);
  t.like(j.attacks[0], { name: 'ftrace-non-site', stopped: false, applicable: false });
  t.regex(j.attacks[0]!.stop, /^not applicable on hypervisor hyperv: LVBS has no VTL call that authenticates ftrace/);
});
