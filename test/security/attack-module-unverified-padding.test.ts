/**
 * Attack (module-unverified-padding): load the genuine crc7, but first hide shellcode in its
 * text page past the 36-byte .text, outside every section, hoping it becomes executable with
 * the page while nobody looks at it.
 * Expected stop: the signature and end state verify (the verifier allows), but the core refuses
 * to apply the grant: the frame holds non-zero bytes outside the sections. -KVM_EPERM, a
 * `heki-denial` exit (verification of module-load), an audit record ok=true, applied=false
 * with the note naming the frame and offset; no module recorded, nothing executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { PADDING_OFFSET } from '../../guest/attacks/module-loading.ts';
import { EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)("code in a section page's padding makes the core refuse the whole load", async (t) => {
  const { report, after } = await attackOnRealKernel('module-unverified-padding', {
    after: (m) => ({
      records: verdicts(m, 'module-load'),
      denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
      coreModules: m.vmm.core.auth?.modules.size,
      probed: m.vmm.log
        .byReason('ept-violation')
        .filter((e) => e.exit.access === 'fetch')
        .map((e) => eptAt(m, e.exit.gpa)),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_LOAD_MODULE; heki-denial exit \(verification of module-load\)/);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: true, applied: false });
  t.regex(String(after.records[0]!['note']), new RegExp(`^non-zero padding in frame \\d+ at offset ${Number(PADDING_OFFSET)}$`));
  t.like(after.denials[0], { kind: 'verification', request: 'module-load' });
  t.regex(String((after.denials[0] as { reason: string }).reason), /unverified non-zero bytes outside the module's sections \(offset 2048\)/);
  t.is(after.coreModules, 0);
  t.is(after.probed.length, 3);
  for (const ept of after.probed) t.is(ept & (EPT_XS | EPT_XU), 0);
});
