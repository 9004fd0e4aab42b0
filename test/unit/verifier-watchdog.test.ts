/**
 * The link's watchdog (hypervisor/verifier-link/watchdog.ts) on its own, with the worker's
 * progress word written by the test: a request that keeps progressing is never cut however
 * long it takes (until the ceiling), one that stops is cut after the no-progress bound, an
 * idle worker is never cut; and the progress reports the verifier's code makes
 * (shared/progress.ts) move the attached word.
 */
import test from 'ava';
import { Watchdog, type Watched } from '../../hypervisor/verifier-link/watchdog.ts';
import { PROGRESS_ITEM_CHUNK, attachProgress, progressCount, reportItemProgress, reportProgress } from '../../shared/progress.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A watchdog over a set the test fills, recording why it expired. */
function watched(noProgressMs: number, ceilingMs: number) {
  const inflight = new Set<Watched>();
  const expired: string[] = [];
  const dog = new Watchdog({ noProgressMs, ceilingMs }, inflight, (why) => expired.push(why));
  const word = new Int32Array(dog.buffer, 0, 1);
  const add = (): Watched => {
    const r = { since: dog.stamp() };
    inflight.add(r);
    return r;
  };
  return { dog, inflight, expired, word, add };
}

/** Waits until `done()` or `ms` pass; the time it took. */
async function until(done: () => boolean, ms: number): Promise<number> {
  const t0 = performance.now();
  while (!done() && performance.now() - t0 < ms) await sleep(10);
  return performance.now() - t0;
}

test('a request whose word keeps moving outlives the no-progress bound; once it stops, it is cut after the bound', async (t) => {
  const w = watched(1000, 60_000);
  t.teardown(() => w.dog.stop());
  w.add();
  const end = performance.now() + 2500;
  while (performance.now() < end) {
    Atomics.add(w.word, 0, 1);
    await sleep(20);
  }
  t.deepEqual(w.expired, [], 'progress every 20 ms for 2.5 s: not cut');
  const took = await until(() => w.expired.length > 0, 10_000);
  t.is(w.expired.length, 1);
  t.regex(w.expired[0] ?? '', /^the verifier made no progress for \d+ ms \(bound 1000 ms\)$/);
  t.true(took >= 1000 - 30, `cut ${Math.round(took)} ms after the last progress`);
});

test('the ceiling cuts a request whatever progress is reported', async (t) => {
  const w = watched(1000, 1500);
  t.teardown(() => w.dog.stop());
  w.add();
  const t0 = performance.now();
  while (performance.now() - t0 < 10_000 && w.expired.length === 0) {
    Atomics.add(w.word, 0, 1);
    await sleep(10);
  }
  t.deepEqual(w.expired, ['a request was not answered within the 1500 ms ceiling']);
  t.true(performance.now() - t0 >= 1500 - 250, 'not before the ceiling (less one tick)');
});

test('nothing in flight is never cut, and a request after an idle spell gets the whole bound', async (t) => {
  const w = watched(1000, 60_000);
  t.teardown(() => w.dog.stop());
  const r = w.add();
  Atomics.add(w.word, 0, 1);
  w.inflight.delete(r);
  await sleep(1500);
  t.deepEqual(w.expired, [], 'idle with no progress for longer than the bound: not cut');
  const t0 = performance.now();
  w.add();
  // The word has not moved for 1.5 s, but the request is new: its bound starts now.
  await until(() => w.expired.length > 0, 10_000);
  t.is(w.expired.length, 1);
  t.true(performance.now() - t0 >= 1000 - 30, `cut ${Math.round(performance.now() - t0)} ms after the request came`);
});

test("the verifier's progress reports move the attached word: each report, and one per chunk of items", (t) => {
  const word = new Int32Array(new SharedArrayBuffer(8));
  attachProgress(word, 1);
  reportProgress();
  t.is(Atomics.load(word, 1), 1);
  for (let i = 0; i < 3 * PROGRESS_ITEM_CHUNK; i++) reportItemProgress(i);
  t.is(Atomics.load(word, 1), 4, 'one report per full chunk of items');
  t.is(progressCount(), 4);
  t.throws(() => attachProgress(word, 2), { instanceOf: RangeError, message: 'progress word 2 is outside a buffer of 2 words' });
});
