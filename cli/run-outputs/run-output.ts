/**
 * What `heki run` can write beside its table: each output is a flag taking a file
 * (`--trace <out.json>`, `--report <out.html>`, `--record <requests.jsonl>`), opened before the
 * machine starts (a path that cannot be written is exit 2, naming it), fed while the scenario
 * runs (a {@link VmObserver} on the host side plus the steps), given the machine's final state
 * before it is disposed, and finished after the run.
 *
 * An output never changes what the run does or its verdicts; a failure to write is reported
 * (exit 1, naming the file and the problem) after the run's own result.
 */
import type { CliIo } from '../command.ts';
import type { Result } from '../../shared/result.ts';
import type { VmObserver } from '../../hypervisor/observe/vm-observer.ts';
import type { MachineApi, StepOutcome } from '../../machine/machine-api.ts';
import type { ScenarioResult, StepResult } from '../../scenario/outcome.ts';
import type { Scenario, Step } from '../../scenario/scenario.ts';

/** What an output knows about the run it belongs to. */
export interface RunOutputContext {
  readonly io: CliIo;
  readonly scenario: Scenario;
  /** The scenario file as the user named it. */
  readonly display: string;
}

/** One open output for one run. Times are `performance.now()` milliseconds. */
export interface RunOutputSession {
  /** Watches the host side while the scenario runs. */
  readonly observer?: VmObserver;
  stepStarted?(step: Step, time: number): void;
  stepFinished?(result: StepResult, step: Step, outcome: StepOutcome, time: number): void;
  /** After the last step, before the machine is disposed: read its final state. */
  beforeDispose?(machine: MachineApi): void | Promise<void>;
  /**
   * Writes (or completes) the file; resolves to one line for the user (`trace: 1,234 events
   * in out.json`) or the problem. Also called when the machine did not start (`result`
   * undefined): write what there is, or remove the partial file.
   */
  finish(result: ScenarioResult | undefined): Promise<Result<string, string>>;
}

/** One `heki run` output flag. */
export interface RunOutput {
  /** The flag's name without dashes. */
  readonly flag: string;
  /** The file it takes, as the usage line names it (`out.json`). */
  readonly file: string;
  /** Its line(s) for `heki run --help`, already indented like the other options. */
  readonly usage: string;
  /** Opens the output at `path` (absolute), or says why it cannot be written. */
  open(path: string, ctx: RunOutputContext): Result<RunOutputSession, string>;
}
