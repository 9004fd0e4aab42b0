/**
 * Attack (set-memory-x-on-data): shellcode in a vmalloc page; set_memory_ro (narrowing, allowed),
 * then set_memory_x through the kernel's memory manager, then KVM_HC_HEKI_SET_MEMORY(R|X)
 * directly; finally the attacker clears NX itself and fetches.
 * Expected stop: the verifier's set-memory plugin denies (executable permission for
 * unauthenticated content): -KVM_EPERM, a `heki-denial` exit of kind verification
 * (set-memory), an audit record ok=false, applied=false; the fetch ends in an `ept-violation`
 * exit; the frame never becomes executable.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('set_memory_x on a data page is denied by the verifier and the page stays NX', async (t) => {
  const { report, after } = await attackOnRealKernel('set-memory-x-on-data', {
    after: (m) => {
      const fetch = m.vmm.log
        .byReason('ept-violation')
        .filter((e) => e.exit.access === 'fetch')
        .at(-1);
      return {
        records: verdicts(m, 'set-memory'),
        denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
        fetchGpa: fetch?.exit.gpa,
        ept: fetch ? eptAt(m, fetch.exit.gpa) : -1,
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_SET_MEMORY/);
  t.regex(report.stop, /verifier denied set-memory: .*set-memory: executable permission for unauthenticated content/);
  t.regex(report.detail, /set_memory_x: .*refused/);
  t.true(after.records.length >= 1);
  for (const r of after.records) t.like(r, { ok: false, applied: false });
  t.regex(String(after.records.at(-1)!['reason']), /unauthenticated content/);
  t.like(after.denials.at(-1), { kind: 'verification', request: 'set-memory' });
  t.not(after.fetchGpa, undefined, 'the attacker tried to run it and the EPT refused');
  t.is(after.ept & (EPT_XS | EPT_XU), 0);
});
