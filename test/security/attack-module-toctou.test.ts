/**
 * Attack (module-toctou): time of check to time of use. The attacker starts loading the
 * genuine crc7 and, while KVM_HC_HEKI_LOAD_MODULE is pending (the core has frozen and
 * snapshotted the frames and waits for the verifier), writes shellcode into the module's text
 * through its still-writable guest mapping: right after the hypercall is issued, and again one
 * event-loop turn later.
 * Expected stop: the frames are FROZEN: each write ends in an `ept-violation` exit (kernel
 * write, the frame's EPT bits carrying FROZEN) and #PF (ept-violation); the verifier allows the
 * load (audit ok=true, applied=true) and the module's memory holds exactly the signed,
 * relocated bytes; its text is R|X|IMMUTABLE.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, loadedModule, memAt, verdicts } from '../helpers/attack-run.ts';
import { EPT_FROZEN, EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('writes during the pending load fault on frozen frames; the loaded bytes are the signed ones', async (t) => {
  const { report, after } = await attackOnRealKernel('module-toctou', {
    after: (m) => {
      const mod = loadedModule(m, 'crc7');
      const text = mod.image.sections.find((s) => s.name === '.text')!;
      const gpa = gpaOf(m, text.addr);
      return {
        gpa,
        ept: eptAt(m, gpa),
        textNow: memAt(m, gpa, text.size),
        textSigned: text.bytes,
        writes: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'write'),
        records: verdicts(m, 'module-load'),
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0xffffffffc0000000 \(frame frozen while verified\); ept-violation exit \(kernel write/);
  t.is(after.writes.length, 2, 'both writes reached the EPT and were refused');
  for (const w of after.writes) {
    t.like(w.exit, { gpa: after.gpa, access: 'write', mode: 'kernel' });
    t.is(w.exit.perms & EPT_FROZEN, EPT_FROZEN, 'refused because the frame was frozen');
    t.is(w.exit.perms & EPT_W, EPT_W, 'the frame was otherwise writable data');
  }
  t.deepEqual(after.textNow, after.textSigned);
  t.is(after.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE | EPT_FROZEN), EPT_R | EPT_XS | EPT_IMMUTABLE);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: true, applied: true, subject: 'crc7' });
});
