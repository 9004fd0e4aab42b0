/**
 * A verifier whose ring loop parks in a blocking Atomics.wait (the default) still serves its
 * control plane: each comlink post rings the ring's doorbell, so the worker takes an
 * event-loop turn, and a parked spare wakes when it is promoted. Nothing here is timed, so
 * this checks that everything is served, exactly once, not how soon (the benchmark does).
 */
import test from 'ava';
import { VerifierLink } from '../../hypervisor/verifier-link/verifier-link.ts';
import { NOP5, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { PatchRecords } from '../../shared/ring/index.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { K, syntheticBody } from '../unit/plugin-synthetic.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';

const keys = testKeyring();
const manifest = signManifest(syntheticBody(), keys.vendor);
const enable = (site: bigint): PatchItem => ({
  kind: 'ftrace',
  site,
  oldBytes: Uint8Array.from(NOP5),
  newBytes: encodeCall32(site, K.ftraceCaller),
  currentBytes: Uint8Array.from(NOP5),
});

test('ring: a parked verifier answers comlink calls and ring requests alike, and a crash while parked fails closed once', async (t) => {
  // Spin for 10 µs only: the loop parks between almost every request.
  const link = await VerifierLink.start({ init: { keyring: keys.data, manifest, faultInjection: true }, transport: 'ring', ring: { workerSpinMs: 0.01 } });
  try {
    for (let round = 0; round < 5; round++) {
      await new Promise((r) => setTimeout(r, 5));
      t.truthy(await link.workerStats(), 'a comlink call reaches the parked worker');
      const v = await link.verifyPatches({ vm: 'vm0', records: recordsOf([enable(K.mcount[0])]) });
      t.true(v.ok, v.reason);
    }
    t.is(link.stats.viaRing, 5);
    t.true(await link.standby(), 'the spare, parked since it started, is ready');
    t.true(await link.injectFault('crash'));
    const crashed = await link.verifyPatches({ vm: 'vm0', records: recordsOf([enable(K.mcount[0])]) });
    t.false(crashed.ok);
    t.regex(crashed.reason, /^verifier unavailable/);
    const after = await link.verifyPatches({ vm: 'vm0', records: recordsOf([enable(K.mcount[0])]) });
    t.true(after.ok, 'the promoted spare, woken from its blocking park, serves');
    t.is(link.stats.restarts, 1);
  } finally {
    await link.dispose();
  }
});

function recordsOf(items: PatchItem[]): PatchRecords {
  const r = PatchRecords.fromItems(items);
  if (typeof r === 'string') throw new Error(r);
  return r;
}
