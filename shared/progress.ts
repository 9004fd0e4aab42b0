/**
 * The verifier's progress counter: how the core's watchdog (hypervisor/verifier-link/
 * watchdog.ts) tells a verifier that is working from one that is stuck, without a message per
 * step.
 *
 * The core gives each verifier worker a small SharedArrayBuffer ({@link PROGRESS_BYTES}) when
 * it starts the thread; the worker attaches it ({@link attachProgress}) and the verifier's own
 * code calls {@link reportProgress} as it works: the engine after every plugin call and commit
 * hook, record batches every {@link PROGRESS_ITEM_CHUNK} items, the kernel-text check between
 * its touch-up passes and per chunk of pages, module loads per relocation pass and per
 * signature check. The core samples the word on its watchdog's tick; a request in flight with
 * no change for the no-progress bound is denied and the worker ended.
 *
 * A report is one plain store to a word only the worker writes: a nanosecond or two, cheap
 * enough for the ring's hot path (a small text-patch batch makes one per plugin). Until a buffer is attached (a verifier in process: tests,
 * `heki replay`'s own worker before it attaches its word), it counts into a private word.
 *
 * TRUST: the counter proves only that code which reports progress is running. A plugin's own
 * code does not report (a plugin that loops shows none and is cut); one that imported this
 * module and called it in a loop would keep the link waiting until the absolute per-request
 * ceiling, which is why the link has one.
 */

/** Bytes of the progress buffer the core allocates per worker (one Int32 word, padded to a cache line). */
export const PROGRESS_BYTES = 64;

/** Items of a batch between two progress reports on the volume paths (a power of two). */
export const PROGRESS_ITEM_CHUNK = 4096;

let words: Int32Array<ArrayBufferLike> = new Int32Array(1);
let index = 0;

/**
 * Reports progress on the attached word from now on (the worker calls it once, at start,
 * with the core's buffer). `at` is the word's index in `counter`.
 */
export function attachProgress(counter: Int32Array, at = 0): void {
  if (!Number.isInteger(at) || at < 0 || at >= counter.length) throw new RangeError(`progress word ${at} is outside a buffer of ${counter.length} words`);
  words = counter;
  index = at;
}

/** One step of work done. */
export function reportProgress(): void {
  // INVARIANT: only this thread writes the word, and the reader only asks whether it changed:
  // a plain aligned 32-bit load and store (no locked instruction on the hot path) suffice.
  words[index] = ((words[index] as number) + 1) | 0;
}

/** Reports progress every {@link PROGRESS_ITEM_CHUNK} items: call it with each item's index in a long loop. */
export function reportItemProgress(i: number): void {
  if ((i & (PROGRESS_ITEM_CHUNK - 1)) === PROGRESS_ITEM_CHUNK - 1) reportProgress();
}

/** The counter's value now (the core's side reads its buffer itself; for tests). */
export function progressCount(): number {
  return Atomics.load(words, index);
}
