/**
 * `heki run --report <out.html>`: one self-contained HTML page of the run: the guest-physical
 * map of the kernel and the loaded modules coloured by EPT permission (from
 * `machine.inspect()` after the last step), the denials the host saw (verifier denials,
 * EPT-violation and Heki-denial exits, from this output's observer) and the denied steps
 * pinned on it, and the table of steps (report/).
 */
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { checkOutputFile } from '../../shared/host-output.ts';
import { err, ok, type Result } from '../../shared/result.ts';
import type { MachineInspection } from '../../machine/inspection.ts';
import { DenialCollector, renderReport } from '../../report/index.ts';
import type { RunOutput, RunOutputSession } from './run-output.ts';

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Whether `path` can be written, creating it (empty) when absent; true in `created` then.
 * An existing file is not truncated before the run ends.
 */
function claim(path: string): Result<{ created: boolean }, string> {
  const target = checkOutputFile(path);
  if (!target.ok) return target;
  if (target.value.exists) return ok({ created: false });
  try {
    closeSync(openSync(path, 'wx'));
    return ok({ created: true });
  } catch (e) {
    return err(`cannot create (${why(e)})`);
  }
}

/** The `--report` output. */
export const reportOutput: RunOutput = {
  flag: 'report',
  file: 'out.html',
  usage:
    '  --report <out.html>     write a self-contained HTML report: the guest-physical map of the\n                          kernel and modules by EPT permission, denials pinned on it, the steps\n',
  open(path, ctx): Result<RunOutputSession, string> {
    const c = claim(path);
    if (!c.ok) return c;
    const denials = new DenialCollector();
    let inspection: MachineInspection | undefined;
    let inspectProblem: string | undefined;
    const session: RunOutputSession = {
      observer: denials.observer,
      stepStarted: (step) => denials.stepStarted(step.index),
      stepFinished: (result, step, outcome) => denials.stepFinished(result.index, result.op, outcome, 'addr' in step ? step.addr : undefined),
      beforeDispose: (machine) => {
        try {
          inspection = machine.inspect?.();
        } catch (e) {
          inspectProblem = why(e);
        }
        denials.resolveSteps((a) => machine.resolve(a));
      },
      finish: async (result) => {
        if (result === undefined) {
          // Nothing ran: leave no empty file behind.
          if (c.value.created) rmSync(path, { force: true });
          return ok(`report: not written (no run)`);
        }
        const page = renderReport({
          scenario: ctx.scenario.name,
          file: ctx.display,
          result,
          inspection,
          denials: denials.denials,
          droppedDenials: denials.dropped,
          generated: new Date().toISOString(),
        });
        try {
          writeFileSync(path, page.html);
        } catch (e) {
          return err(`--report ${path}: cannot write: ${why(e)}`);
        }
        const note = inspectProblem
          ? `; no map: inspecting the machine failed: ${inspectProblem}`
          : inspection
            ? ''
            : '; no map: the machine offers no inspection';
        return ok(`report: ${path} (${page.regions} regions, ${page.denials} denials${note})`);
      },
    };
    return ok(session);
  },
};
