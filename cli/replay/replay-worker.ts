/**
 * The `heki replay` worker thread (started by replay-runner.ts): it loads the plugins under
 * development and replays the log, so a plugin that loops or never settles blocks this thread
 * only, and the main thread can stop it. Before each step that runs plugin code it writes the
 * step into the shared progress words, which the main thread's watchdog reads; while it
 * decides, the engine's progress reports tick them too.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { REQUEST_KINDS } from '../../shared/protocol.ts';
import { attachProgress } from '../../shared/progress.ts';
import { loadDevPlugins } from './dev-plugins.ts';
import { replayLog } from './replay-log.ts';
import { PROGRESS, PHASE, type ReplayJob, type WorkerMessage } from './replay-progress.ts';

const port = parentPort;
if (!port) throw new Error('cli/replay/replay-worker.ts must run in a worker thread');
const { job, progress } = workerData as { job: ReplayJob; progress: SharedArrayBuffer };
const words = new Int32Array(progress);
// The verifier engine's own progress reports (shared/progress.ts) tick the same word: a long
// request that keeps deciding is not stopped, one whose plugin loops is.
attachProgress(words, PROGRESS.TICK);
const post = (m: WorkerMessage): void => port.postMessage(m);

/** Marks the step the thread starts now. */
function step(phase: number, line = 0, kind = -1): void {
  Atomics.store(words, PROGRESS.PHASE, phase);
  Atomics.store(words, PROGRESS.LINE, line);
  Atomics.store(words, PROGRESS.KIND, kind);
  Atomics.add(words, PROGRESS.TICK, 1);
}

step(PHASE.LOADING);
const plugins = await loadDevPlugins(job.pluginPaths, job.cwd);
if (typeof plugins === 'string') {
  post({ type: 'usage', message: plugins });
} else {
  post({ type: 'plugins', plugins: plugins.map((p) => ({ name: p.plugin.name, path: p.path })) });
  const r = await replayLog(
    job.file,
    {
      plugins,
      ...(job.config ? { config: job.config } : {}),
      watch: {
        rebuilding: (line) => step(PHASE.REBUILDING, line),
        deciding: (line, kind) => step(PHASE.DECIDING, line, (REQUEST_KINDS as readonly string[]).indexOf(kind)),
        reading: (line) => step(PHASE.READING, line),
      },
    },
    (difference) => post({ type: 'difference', difference }),
  );
  step(PHASE.DONE);
  post(r.ok ? { type: 'done', summary: r.value } : { type: 'log-error', error: r.error });
}
