/**
 * `Atomics.waitAsync` (Node 16+, ES2024), typed here because the project's TypeScript library
 * is ES2022. Waiting this way never blocks the thread: the returned promise settles on
 * `Atomics.notify`, while the event loop keeps running.
 */

/** What `Atomics.waitAsync` returns. */
export type WaitAsyncResult = { async: false; value: 'not-equal' | 'timed-out' } | { async: true; value: Promise<'ok' | 'timed-out'> };

type AtomicsWithWaitAsync = typeof Atomics & {
  waitAsync?(array: Int32Array, index: number, value: number, timeoutMs?: number): WaitAsyncResult;
};

/** True when this runtime has `Atomics.waitAsync`. */
export const HAVE_WAIT_ASYNC: boolean = typeof (Atomics as AtomicsWithWaitAsync).waitAsync === 'function';

/**
 * Resolves once `array[index]` may no longer hold `value` (notified, or it already differs),
 * or after `timeoutMs`. Throws if the runtime lacks `Atomics.waitAsync` (check {@link HAVE_WAIT_ASYNC}).
 */
export function waitAsync(array: Int32Array, index: number, value: number, timeoutMs?: number): WaitAsyncResult {
  const f = (Atomics as AtomicsWithWaitAsync).waitAsync;
  if (!f) throw new Error('Atomics.waitAsync is not available in this runtime');
  return timeoutMs === undefined ? f(array, index, value) : f(array, index, value, timeoutMs);
}
