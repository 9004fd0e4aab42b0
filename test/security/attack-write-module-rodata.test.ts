/**
 * Attack (write-module-rodata): load crc7 (genuine, allowed), then overwrite a byte of its
 * read-only data (its rodata group): through the module's read-only mapping, then with RW set
 * in that page-table entry.
 * Expected stop: an `ept-violation` exit (kernel write) and #PF (ept-violation); the byte is
 * still the one the signed, relocated image puts there; the frame stays EPT_R | EPT_IMMUTABLE.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, gpaOf, loadedModule, memAt, signedByte } from '../helpers/attack-run.ts';
import { MODULE_WRITE_OFFSET } from '../../guest/attacks/protected-writes.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)("writing crc7's ro ends in an EPT violation; the signed byte stays", async (t) => {
  const { report, after } = await attackOnRealKernel('write-module-rodata', {
    after: (m) => {
      const mod = loadedModule(m, 'crc7');
      const va = mod.image.groups.find((g) => g.group === 'ro')!.start + MODULE_WRITE_OFFSET;
      const gpa = gpaOf(m, va);
      return {
        gpa,
        byte: memAt(m, gpa, 1)[0],
        signed: signedByte(mod, va),
        ept: eptAt(m, gpa),
        writes: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'write'),
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^#PF \(ept-violation\) at 0xffffffffc[0-9a-f]+; ept-violation exit \(kernel write/);
  t.is(after.byte, after.signed);
  t.is(after.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_IMMUTABLE);
  t.is(after.writes.length, 1);
  t.like(after.writes[0]!.exit, { gpa: after.gpa, access: 'write', mode: 'kernel' });
});
