/**
 * Attack (flood-verifier): 600 concurrent KVM_HC_HEKI_SET_MEMORY(R|X) requests, each for a
 * page holding shellcode, more than the verifier link lets wait at once (256).
 * Expected stop: no request is granted: those the verifier decides are denied (-KVM_EPERM,
 * `heki-denial` exits, audit records ok=false), the excess is refused at once as busy
 * (-KVM_EAGAIN, retryable, audited, no denial exit); no page becomes executable; a genuine
 * request afterwards is still decided and allowed.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { FLOOD_REQUESTS } from '../../guest/attacks/verifier-attacks.ts';
import { EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('a flood of set_memory requests grants nothing and the verifier keeps serving', async (t) => {
  const { report, after } = await attackOnRealKernel('flood-verifier', {
    after: (m) => {
      const fetched = m.vmm.log.byReason('ept-violation').filter((e) => e.exit.access === 'fetch');
      return {
        setMemory: verdicts(m, 'set-memory'),
        patches: verdicts(m, 'text-patch'),
        denials: m.vmm.log.byReason('heki-denial').length,
        busy: m.link.stats.busy,
        maxInFlight: m.link.maxInFlight,
        fetched: fetched.length,
        executable: fetched.filter((e) => (eptAt(m, e.exit.gpa) & (EPT_XS | EPT_XU)) !== 0).length,
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, new RegExp(`^all ${FLOOD_REQUESTS} refused \\((\\d+) x -KVM_EPERM, (\\d+) x -KVM_EAGAIN\\); the verifier still serves`));
  t.true(FLOOD_REQUESTS > after.maxInFlight, 'the flood exceeds the bound');
  t.is(after.setMemory.length, FLOOD_REQUESTS, 'every request is audited');
  for (const r of after.setMemory) t.like(r, { ok: false, applied: false });
  const busy = after.setMemory.filter((r) => String(r['reason']).startsWith('verifier busy')).length;
  t.is(busy, after.busy);
  t.true(busy > 0);
  t.is(after.denials, FLOOD_REQUESTS - busy, 'a denial exit for each decided request, none for a busy one');
  t.is(after.fetched, FLOOD_REQUESTS, 'the attacker tried every page');
  t.is(after.executable, 0);
  t.like(after.patches.at(-1), { ok: true, applied: true }, 'the genuine request afterwards was allowed');
});
