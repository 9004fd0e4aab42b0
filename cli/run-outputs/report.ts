/**
 * `heki run --report <out.html>`: one self-contained HTML page of the run: the guest-physical
 * map of the kernel and the loaded modules coloured by EPT permission (from
 * `machine.inspect()` after the last step), the denials the host saw (verifier denials,
 * EPT-violation and Heki-denial exits, from this output's observer) and the denied steps
 * pinned on it, and the table of steps (runtime/report/).
 */
import { accessSync, closeSync, constants, openSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { err, ok, type Result } from '../../shared/result.ts';
import type { MachineInspection } from '../../runtime/inspection.ts';
import { DenialCollector, renderReport } from '../../runtime/report/index.ts';
import type { RunOutput, RunOutputSession } from './run-output.ts';

const why = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Whether `path` can be written, creating it (empty) when absent; true in `created` then.
 * An existing file is not truncated before the run ends.
 */
function claim(path: string): Result<{ created: boolean }, string> {
  let st;
  try {
    st = statSync(path);
  } catch {
    st = undefined;
  }
  if (st?.isDirectory()) return err('is a directory; name an .html file');
  if (st) {
    try {
      accessSync(path, constants.W_OK);
      return ok({ created: false });
    } catch (e) {
      return err(`cannot write (${why(e)})`);
    }
  }
  const dir = dirname(path);
  try {
    if (!statSync(dir).isDirectory()) return err(`${dir} is not a directory`);
  } catch {
    return err(`the folder ${dir} does not exist`);
  }
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
  usage: '  --report <out.html>     write a self-contained HTML report: the guest-physical map of the\n                          kernel and modules by EPT permission, denials pinned on it, the steps\n',
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
        const note = inspectProblem ? `; no map: inspecting the machine failed: ${inspectProblem}` : inspection ? '' : '; no map: the machine offers no inspection';
        return ok(`report: ${path} (${page.regions} regions, ${page.denials} denials${note})`);
      },
    };
    return ok(session);
  },
};
