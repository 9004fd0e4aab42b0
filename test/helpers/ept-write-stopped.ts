/**
 * The stops of the attacks that write locked kernel memory and find only the EPT in the way
 * (the write-* and text-alias security tests): a #PF with cause ept-violation after an
 * `ept-violation` exit for a kernel write, the VMM's action `inject`; the bytes and the
 * frame's EPT bits unchanged.
 */
import type { ExecutionContext } from 'ava';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';
import { attackOnRealKernel, eptAt, gpaOf, memAt, sym } from './attack-run.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';

const EPT_STOP = /^#PF \(ept-violation\) at 0x[0-9a-f]+; ept-violation exit \(kernel write, gpa 0x[0-9a-f]+\)/;

/**
 * Attack `name` writes the byte at `at(m)`, whose frame's R, Xs and IMMUTABLE bits are
 * `locked` (R|Xs|IMMUTABLE for text, R|IMMUTABLE for read-only data): it is stopped there.
 */
export async function assertLockedWriteStopped(t: ExecutionContext, name: string, at: (m: SimulatedMachine) => bigint, locked: number): Promise<void> {
  const { report, before, after } = await attackOnRealKernel(name, {
    before: (m) => {
      const gpa = gpaOf(m, at(m));
      return { gpa, byte: memAt(m, gpa, 1)[0], ept: eptAt(m, gpa) };
    },
    after: (m, b) => ({
      byte: memAt(m, b.gpa, 1)[0],
      ept: eptAt(m, b.gpa),
      writes: m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'write'),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, EPT_STOP);
  t.is(after.byte, before.byte);
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_XS | EPT_IMMUTABLE), locked);
  t.true(after.writes.length >= 1);
  t.like(after.writes.at(-1)!.exit, { gpa: before.gpa, access: 'write', mode: 'kernel', pageWalk: false });
  t.is(after.writes.at(-1)!.action, 'inject');
}

/**
 * Attack `name` makes commit_creds's text page writable in page tables it owns (a second
 * mapping, a forged large page) and writes 0x10 bytes into it: the EPT stops the write, once.
 */
export async function assertTextPageWriteStopped(t: ExecutionContext, name: string): Promise<void> {
  const { report, before, after } = await attackOnRealKernel(name, {
    before: (m) => {
      const gpa = gpaOf(m, sym(m, 'commit_creds'));
      return { gpa, page: memAt(m, gpa & ~0xfffn, 4096), ept: eptAt(m, gpa) };
    },
    after: (m, b) => ({ page: memAt(m, b.gpa & ~0xfffn, 4096), ept: eptAt(m, b.gpa), events: m.vmm.log.byReason('ept-violation') }),
  });
  t.true(report.stopped, report.detail);
  t.deepEqual(after.page, before.page, 'the text page is unchanged');
  t.is(after.ept, before.ept);
  t.is(before.ept & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
  t.regex(report.stop, EPT_STOP);
  t.is(after.events.length, 1);
  t.like(after.events[0]!.exit, { gpa: before.gpa + 0x10n, access: 'write', mode: 'kernel', pageWalk: false });
}
