/**
 * The core's end of the ring (hypervisor/verifier-link/ring-channel.ts) against a verifier
 * loop (verifier-vm/ring-server.ts) on the same thread, so nothing depends on timing: while
 * the core spins, the loop cannot run, so the first request of a burst always ends up waiting
 * in Atomics.waitAsync, and the rest of the burst must be published without spinning (a
 * burst sent one spin at a time held every verdict back until the last was sent).
 */
import test from 'ava';
import type { PatchItem } from '../../shared/protocol.ts';
import { PatchRecords } from '../../shared/ring/index.ts';
import { RingChannel, type RingAnswer } from '../../hypervisor/verifier-link/ring-channel.ts';
import { RingServer } from '../../verifier-vm/ring-server.ts';

const item: PatchItem = {
  kind: 'ftrace',
  site: 0xffff_ffff_8100_0040n,
  oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
  newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4),
  currentBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0),
};

function serve(channel: RingChannel): { server: RingServer; decided: number[] } {
  const decided: number[] = [];
  const server = new RingServer(
    channel.layout,
    {
      patches: (id) => {
        decided.push(id);
        return { verdict: { id, ok: id % 2 === 0, reason: id % 2 === 0 ? 'allowed' : 'denied', plugins: ['test'] }, grants: undefined };
      },
      message: () => {
        throw new Error('not used');
      },
      takeFault: () => undefined,
    },
    { spinMs: 0.2, sliceMs: 0.1, park: 'async' },
  );
  return { server, decided };
}

test('a burst sent in one tick: one spin, the rest published at once, every request answered once and in order', async (t) => {
  const channel = new RingChannel({ requestBytes: 1 << 16, verdictBytes: 1 << 16, maxSpinUs: 50 });
  const { server, decided } = serve(channel);
  server.start();
  try {
    const records = PatchRecords.fromItems([item]);
    if (typeof records === 'string') return t.fail(records);
    const answers: Array<Promise<RingAnswer> | undefined> = [];
    for (let id = 1; id <= 32; id++) answers.push(channel.sendPatches(id, 'vm0', records));
    t.is(channel.counters.queued, 31, 'only the first request spun; the waiter it armed serves the rest');
    const got = await Promise.all(answers);
    t.deepEqual(
      decided,
      Array.from({ length: 32 }, (_, i) => i + 1),
      'decided once each, in order',
    );
    got.forEach((a, i) => {
      t.is(a?.kind, 'verdict');
      if (a?.kind === 'verdict') {
        t.is(a.verdict.id, i + 1);
        t.is(a.verdict.ok, (i + 1) % 2 === 0);
      }
    });
    t.is(channel.counters.answered, 32);
    t.is(channel.inFlight, 0);
  } finally {
    server.stop();
  }
});

test('after a burst, a lone request spins again (nothing is left queued behind a waiter)', async (t) => {
  const channel = new RingChannel({ requestBytes: 1 << 16, verdictBytes: 1 << 16, maxSpinUs: 50 });
  const { server } = serve(channel);
  server.start();
  try {
    const records = PatchRecords.fromItems([item]);
    if (typeof records === 'string') return t.fail(records);
    await Promise.all([1, 2, 3].map((id) => channel.sendPatches(id, 'vm0', records)));
    const queued = channel.counters.queued;
    const a = await channel.sendPatches(4, 'vm0', records);
    t.is(a?.kind, 'verdict');
    t.is(channel.counters.queued, queued, 'the lone request was not queued behind a stale waiter');
    t.is(channel.inFlight, 0);
  } finally {
    server.stop();
  }
});
