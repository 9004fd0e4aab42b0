/**
 * What the `heki replay` worker (replay-worker.ts) and its runner (replay-runner.ts) share:
 * the job, the messages, and the layout of the progress words the watchdog reads.
 */
import type { LogError } from '../../shared/request-log.ts';
import type { PluginConfig, ReplaySummary, RequestDifference } from './replay-log.ts';

/** What to replay. */
export interface ReplayJob {
  readonly file: string;
  /** `--plugin` paths as given, resolved against `cwd`. */
  readonly pluginPaths: readonly string[];
  readonly cwd: string;
  readonly config?: PluginConfig;
}

/** Int32 words of the progress buffer. */
export const PROGRESS = { PHASE: 0, LINE: 1, KIND: 2, TICK: 3, WORDS: 4 } as const;

/** What the worker is doing (PROGRESS.PHASE). */
export const PHASE = { STARTING: 0, LOADING: 1, REBUILDING: 2, DECIDING: 3, DONE: 4, READING: 5 } as const;

/** Messages from the worker. */
export type WorkerMessage =
  | { readonly type: 'usage'; readonly message: string }
  | { readonly type: 'plugins'; readonly plugins: ReadonlyArray<{ readonly name: string; readonly path: string }> }
  | { readonly type: 'difference'; readonly difference: RequestDifference }
  | { readonly type: 'done'; readonly summary: ReplaySummary }
  | { readonly type: 'log-error'; readonly error: LogError };
