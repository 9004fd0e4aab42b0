/**
 * Runs a replay in a worker thread (replay-worker.ts) under a watchdog. Plugin code, under
 * development or recorded, runs there: one that loops (at import or in `decide`) or never
 * settles its promise cannot be interrupted on the thread it runs on, so the main thread
 * watches the worker's progress words and ends the worker when a step shows no progress for
 * its bound (while deciding, the engine's own reports count: shared/progress.ts), or one
 * request outlives the ceiling, naming the step. The worker's own start (compiling the verifier) is not bounded by
 * the plugins' bounds.
 */
import { Worker } from 'node:worker_threads';
import { REQUEST_KINDS } from '../../shared/protocol.ts';
import type { LogError } from '../../shared/request-log.ts';
import type { ReplaySummary, RequestDifference } from './replay-log.ts';
import { PHASE, PROGRESS, type ReplayJob, type WorkerMessage } from './replay-progress.ts';

const ENTRY = new URL('./replay-worker-entry.mjs', import.meta.url);

/** How long each step may take (ms). */
export interface ReplayBounds {
  /**
   * Deciding one request again: how long it may go without the engine reporting progress
   * (the link's no-progress bound, shared/progress.ts).
   */
  readonly requestMs: number;
  /** Deciding one request again, progress or not (the link's ceiling). */
  readonly requestCeilingMs: number;
  /** Loading the plugins under development, or rebuilding a recorded verifier (importing its plugin modules). */
  readonly loadMs: number;
  /** The worker's start, until it loads plugins (its code is compiled then). */
  readonly startMs: number;
}

/** How a replay ended. */
export type ReplayOutcome =
  | { readonly kind: 'done'; readonly summary: ReplaySummary; readonly plugins: ReadonlyArray<{ readonly name: string; readonly path: string }> }
  | { readonly kind: 'usage'; readonly message: string }
  | { readonly kind: 'log-error'; readonly error: LogError }
  /** A step outlived its bound, or the worker failed: the message says which and why. */
  | { readonly kind: 'stopped'; readonly message: string };

/** Replays `job` in a worker; `onDifference` hears each difference as the worker finds it. Never rejects. */
export function runReplay(job: ReplayJob, bounds: ReplayBounds, onDifference: (d: RequestDifference) => void): Promise<ReplayOutcome> {
  const progress = new SharedArrayBuffer(PROGRESS.WORDS * 4);
  const words = new Int32Array(progress);
  const worker = new Worker(ENTRY, { workerData: { job, progress } });
  let plugins: ReadonlyArray<{ readonly name: string; readonly path: string }> = [];
  return new Promise<ReplayOutcome>((resolve) => {
    let settled = false;
    const finish = (o: ReplayOutcome): void => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      void worker.terminate();
      resolve(o);
    };
    let tick = Atomics.load(words, PROGRESS.TICK);
    let since = performance.now();
    // The step (phase and line) seen last, and since when: for the ceiling on one request.
    let stepKey = -1;
    let stepSince = since;
    const timer = setInterval(
      () => {
        const now = performance.now();
        const phase = Atomics.load(words, PROGRESS.PHASE);
        const key = phase * 0x1000_0000 + Atomics.load(words, PROGRESS.LINE);
        if (key !== stepKey) {
          stepKey = key;
          stepSince = now;
        } else if (phase === PHASE.DECIDING && now - stepSince > bounds.requestCeilingMs) {
          finish({
            kind: 'stopped',
            message: `${where(phase, Atomics.load(words, PROGRESS.LINE), Atomics.load(words, PROGRESS.KIND))} was not finished within the ${(bounds.requestCeilingMs / 1000).toFixed(1)} s ceiling; the replay was stopped`,
          });
          return;
        }
        const t = Atomics.load(words, PROGRESS.TICK);
        if (t !== tick) {
          tick = t;
          since = now;
          return;
        }
        const bound = phase === PHASE.DECIDING ? bounds.requestMs : phase === PHASE.STARTING ? bounds.startMs : bounds.loadMs;
        if (now - since > bound)
          finish({ kind: 'stopped', message: stalled(phase, Atomics.load(words, PROGRESS.LINE), Atomics.load(words, PROGRESS.KIND), bound, job) });
      },
      Math.max(10, Math.min(250, bounds.requestMs / 4)),
    );
    worker.on('message', (m: WorkerMessage) => {
      if (m.type === 'difference') onDifference(m.difference);
      else if (m.type === 'plugins') plugins = m.plugins;
      else if (m.type === 'usage') finish({ kind: 'usage', message: m.message });
      else if (m.type === 'log-error') finish({ kind: 'log-error', error: m.error });
      else finish({ kind: 'done', summary: m.summary, plugins });
    });
    worker.on('error', (e) => finish({ kind: 'stopped', message: `a plugin failed outside a decision (the replay was stopped): ${oneLine(e)}` }));
    worker.on('exit', (code) => {
      const phase = Atomics.load(words, PROGRESS.PHASE);
      // Exit code 13: the thread's top-level await never settled and nothing was left that
      // could settle it (Node's "unsettled top-level await"): a plugin's promise that never settles.
      const message =
        code === 13 && phase !== PHASE.DONE
          ? `${where(phase, Atomics.load(words, PROGRESS.LINE), Atomics.load(words, PROGRESS.KIND))}: a plugin's promise can never settle (nothing is left that could settle it); the replay was stopped`
          : `the replay worker exited with code ${code} before it finished (a plugin called process.exit?)`;
      finish({ kind: 'stopped', message });
    });
  });
}

function oneLine(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  const first = m.split('\n')[0] ?? '';
  return first.length > 300 ? `${first.slice(0, 300)}...` : first;
}

/** The step in words: `line 12: deciding the text-patch request`. */
function where(phase: number, line: number, kind: number): string {
  if (phase === PHASE.DECIDING) return `line ${line}: deciding the ${REQUEST_KINDS[kind] ?? 'recorded'} request`;
  if (phase === PHASE.REBUILDING) return `line ${line}: rebuilding the recorded verifier`;
  if (phase === PHASE.READING) return `reading the log after line ${line}`;
  return 'loading the plugins under test';
}

/** What the worker was doing when it stalled, in words. */
function stalled(phase: number, line: number, kind: number, bound: number, job: ReplayJob): string {
  const s = `${(bound / 1000).toFixed(1)} s`;
  const plugins = job.pluginPaths.length ? ` (plugins under test: ${job.pluginPaths.join(', ')})` : '';
  switch (phase) {
    case PHASE.LOADING:
    case PHASE.REBUILDING:
      return `${where(phase, line, kind)} took longer than ${s}: a plugin module loops or never finishes loading${plugins}; the replay was stopped`;
    case PHASE.DECIDING:
      return `${where(phase, line, kind)} made no progress for ${s}: a plugin loops or never settles its promise${plugins}; the replay was stopped`;
    case PHASE.READING:
      return `${where(phase, line, kind)} took longer than ${s}; the replay was stopped`;
    default:
      return `the replay worker did not start within ${s}; it was stopped`;
  }
}
