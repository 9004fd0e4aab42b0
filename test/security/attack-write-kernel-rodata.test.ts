/**
 * Attack (write-kernel-rodata): overwrite a .rodata constant (the first entry of
 * sys_call_table). The attacker first writes through the kernel's own read-only mapping, then
 * sets RW in that very page-table entry (it owns the tables) and writes again, so that only the
 * EPT stands in the way.
 * Expected stop: an `ept-violation` exit (kernel write of the target's gpa) and #PF with cause
 * `ept-violation`; the byte, and the frame's EPT bits (EPT_R | EPT_IMMUTABLE), unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from '../helpers/attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('writing kernel .rodata ends in an EPT violation; the byte and the EPT bits are unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('write-kernel-rodata', {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'sys_call_table') + 0x0n);
      return { gpa, byte: memAt(m, gpa, 1)[0], ept: eptAt(m, gpa) };
    },
    after: (m, b) => ({ byte: memAt(m, b.gpa, 1)[0], ept: eptAt(m, b.gpa), writes: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'write') }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0x[0-9a-f]+; ept-violation exit \(kernel write, gpa 0x[0-9a-f]+\)/);
  t.is(after.byte, before.byte);
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_IMMUTABLE);
  t.true(after.writes.length >= 1);
  t.like(after.writes.at(-1)!.exit, { gpa: before.gpa, access: 'write', mode: 'kernel', pageWalk: false });
  t.is(after.writes.at(-1)!.action, 'inject');
});
