/**
 * The security tests of the boot touch-up attacks (guest/attacks/boot-touchups.ts), one file
 * per attack, each run on every shipped CPU model: where the attack applies, it must be
 * stopped at the end of boot with the verifier naming the site and its table, and the VM must
 * be stopped with its boot never ended; where it does not apply, the runner must say so (not
 * applicable, with the reason) without booting anything.
 */
import type { ExecutionContext } from 'ava';
import { runAttack, type AttackReport } from '../../checks/attacks.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { attackOnRealKernel, gpaOf, memAt, verdicts } from './attack-run.ts';

/** Every shipped CPU model, by name. */
export const SHIPPED_CPU_MODELS: readonly string[] = [...BUILTIN_CPU_MODELS.keys()];

/** The first tampered site, its table's section and its new bytes, as the attack's detail gives them. */
const TAMPERED = /the first (0x[0-9a-f]+) \((\.[a-z_]+)\) now ((?:[0-9a-f]{2} ?)+)/;

/**
 * Runs attack `name` on `cpu` and asserts its stop: -KVM_EPERM from KVM_HC_HEKI_END_BOOT;
 * the verifier's kernel-text denial naming the first tampered site and `section` (the first
 * differing byte is that site's); the heki-denial exit on which the VMM stopped the VM; the
 * VM stopped with its boot not ended; the attacker's bytes really in guest memory at the site.
 */
export async function assertStoppedAtEndOfBoot(t: ExecutionContext, name: string, cpu: string, section: string, what?: RegExp): Promise<AttackReport> {
  const run = await attackOnRealKernel(
    name,
    {
      after: (m, _before, report) => {
        const v = verdicts(m, 'kernel-text');
        const exits = m.vmm.log.byReason('heki-denial');
        const detail = TAMPERED.exec(report.detail);
        return {
          verdicts: v.map((r) => ({ ok: r['ok'], reason: String(r['reason']) })),
          stopExits: exits.filter((e) => e.kind === 'exit' && e.action === 'stop').length,
          stopped: m.vmm.core.stopped,
          bootEnded: m.vmm.core.auth?.bootEnded,
          memory: detail ? Buffer.from(memAt(m, gpaOf(m, BigInt(detail[1]!)), detail[3]!.trim().split(' ').length)).toString('hex') : undefined,
        };
      },
    },
    { cpu },
  );
  const r = run.report;
  t.true(r.applicable, r.stop);
  t.true(r.stopped, `${r.stop}\n${r.detail}`);
  const tampered = TAMPERED.exec(r.detail);
  if (what) t.regex(r.detail, what);
  if (!tampered) {
    t.fail(`the attack's detail names no tampered site: ${r.detail}`);
    return r;
  }
  const [, site, tableSection, bytes] = tampered;
  t.is(tableSection, section);
  t.true(r.stop.startsWith('-KVM_EPERM from KVM_HC_HEKI_END_BOOT; the VM is stopped'), r.stop);
  t.true(r.stop.includes(`on CPU model ${cpu} in `), r.stop);
  const first = /the first at (0x[0-9a-f]+), /.exec(r.stop);
  const at = first ? BigInt(first[1]!) - BigInt(site!) : -1n;
  t.true(at >= 0n && at < BigInt(bytes!.trim().split(' ').length), `the first differing byte is in the tampered site ${site}: ${r.stop}`);
  t.true(r.stop.includes(`site ${site} (${section})`), `the verifier names the site and its table: ${r.stop}`);
  const a = run.after;
  t.is(a.verdicts.length, 2, "the first boot was allowed, the attacker's refused");
  t.like(a.verdicts[0], { ok: true });
  t.like(a.verdicts[1], { ok: false });
  t.true(a.verdicts[1]!.reason.includes(`site ${site} (${section})`), a.verdicts[1]!.reason);
  t.is(a.stopExits, 1, 'the VMM stopped the VM on the heki-denial exit');
  t.regex(a.stopped ?? '', /^the booted kernel does not match the signed manifest: kernel-text: \.text differs from what Linux 6\.1 writes/);
  t.false(a.bootEnded, 'boot never ended: the tampered kernel never ran under protection');
  t.is(a.memory, bytes!.replaceAll(' ', ''), "the attacker's bytes are in guest memory at the site: the tampering really happened");
  return r;
}

/**
 * Registers one test per shipped CPU model for attack `name`: `applies` says, per model, whether
 * the attack applies (a model missing from it fails, so a new shipped model must be classified);
 * where it applies the stop is asserted ({@link assertStoppedAtEndOfBoot}), elsewhere the
 * not-applicable report with `why`.
 */
export function eachShippedModel(
  register: (title: string, impl: (t: ExecutionContext) => Promise<void>) => void,
  name: string,
  section: string,
  applies: Readonly<Record<string, { readonly what?: RegExp } | { readonly notApplicable: RegExp }>>,
): void {
  for (const cpu of SHIPPED_CPU_MODELS) {
    const a = applies[cpu];
    if (!a) {
      register(`${name} on ${cpu}: classified`, async (t) => void t.fail(`the test does not say whether ${name} applies to ${cpu}`));
    } else if ('notApplicable' in a) {
      register(`${name} on ${cpu}: not applicable, and the run says why without booting`, (t) => assertNotApplicable(t, name, cpu, a.notApplicable));
    } else {
      register(
        `${name} on ${cpu}: end of boot refused naming the site in ${section}, the VM stopped`,
        async (t) => void (await assertStoppedAtEndOfBoot(t, name, cpu, section, a.what)),
      );
    }
  }
}

/** Asserts that `name` does not apply to `cpu` and that the run says why, without a machine. */
export async function assertNotApplicable(t: ExecutionContext, name: string, cpu: string, why: RegExp): Promise<void> {
  const r = await runAttack(name, {}, { cpu });
  if (!r.ok) return void t.fail(r.error.message);
  const report = r.value.report;
  t.false(report.applicable);
  t.false(report.stopped, 'an attack that does not apply is never counted as stopped');
  t.regex(report.stop, why);
  t.true(report.stop.startsWith(`not applicable on CPU model ${cpu}: `), report.stop);
}
