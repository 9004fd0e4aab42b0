/**
 * `heki run --trace <out.json>`: a Chrome trace-event file of the run (cli/run-outputs/
 * chrome-trace.ts says what is on which track) that opens in https://ui.perfetto.dev and
 * chrome://tracing: the scenario's steps, each vCPU's hypercalls and exits, the verifier's
 * requests with their verdicts, the EPT updates.
 *
 * The file is opened (created empty) at open(), so a path that cannot be written is exit 2
 * before the machine starts; the trace is written at finish(). A run whose machine did not
 * start leaves no file.
 */
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { checkOutputFile } from '../../shared/host-output.ts';
import { err, ok, type Result } from '../../shared/result.ts';
import type { ScenarioResult } from '../../scenario/outcome.ts';
import { ChromeTrace } from './chrome-trace.ts';
import type { RunOutput, RunOutputSession } from './run-output.ts';

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Why `path` cannot be opened for writing, in words, or the open file. */
function openForWriting(path: string): Result<number, string> {
  const target = checkOutputFile(path);
  if (!target.ok) return err(`cannot write the trace: ${target.error}`);
  try {
    return ok(openSync(path, 'w'));
  } catch (e) {
    return err(`cannot write the trace: ${message(e)}`);
  }
}

/** One run's trace. */
class TraceSession implements RunOutputSession {
  readonly #trace: ChromeTrace;
  readonly #path: string;
  #fd: number | undefined;

  constructor(path: string, fd: number, trace: ChromeTrace) {
    this.#path = path;
    this.#fd = fd;
    this.#trace = trace;
  }

  get observer() {
    return this.#trace.observer;
  }

  stepStarted: RunOutputSession['stepStarted'] = (step, time) => this.#trace.stepStarted(step, time);

  stepFinished: RunOutputSession['stepFinished'] = (result, step, _outcome, time) => this.#trace.stepFinished(result, step, time);

  async finish(result: ScenarioResult | undefined): Promise<Result<string, string>> {
    const fd = this.#fd;
    this.#fd = undefined;
    if (fd === undefined) return err(`--trace ${this.#path}: already finished`);
    if (result === undefined) {
      // The machine did not start: no trace, no empty file left behind.
      try {
        closeSync(fd);
        rmSync(this.#path, { force: true });
      } catch {
        // nothing to report: the run already failed with its own message
      }
      return ok('');
    }
    try {
      for (const chunk of this.#trace.chunks(performance.now())) writeSync(fd, chunk);
      closeSync(fd);
    } catch (e) {
      try {
        closeSync(fd);
      } catch {
        // already closed
      }
      return err(`--trace ${this.#path}: cannot write the trace: ${message(e)}`);
    }
    const n = this.#trace.count;
    const dropped = this.#trace.dropped > 0 ? ` (${this.#trace.dropped.toLocaleString('en-US')} more dropped: the trace keeps at most that many)` : '';
    return ok(`trace: ${n.toLocaleString('en-US')} events in ${this.#path}${dropped} (open it in https://ui.perfetto.dev)`);
  }
}

/** The `--trace` output. */
export const traceOutput: RunOutput = {
  flag: 'trace',
  file: 'out.json',
  usage: `  --trace <out.json>      write a Chrome trace of the run (steps, hypercalls and exits per vCPU,
                          verifier requests with their verdicts, EPT updates); open it in
                          https://ui.perfetto.dev or chrome://tracing
`,
  open(path, ctx) {
    const fd = openForWriting(path);
    if (!fd.ok) return fd;
    const trace = new ChromeTrace({ origin: performance.now(), process: `heki run ${ctx.scenario.name}` });
    return ok(new TraceSession(path, fd.value, trace));
  },
};
