/**
 * The readable report of `heki run` (without --json): a header, one table row per step as
 * it finishes (index, op, outcome, expected, ok, reason), and a summary line. Columns have
 * fixed widths so rows can be printed while the run goes on.
 */
import type { ScenarioResult, StepResult } from './outcome.ts';
import type { Scenario } from './scenario.ts';

const W = { index: 3, op: 13, outcome: 8, expected: 8, ok: 4 } as const;

/** The line that opens a report. */
export function formatHeader(scenario: Scenario, display: string): string {
  return `scenario '${scenario.name}' (${display}): ${scenario.steps.length} step${scenario.steps.length === 1 ? '' : 's'}, kernel ${scenario.kernel}`;
}

/** The column titles. */
export function formatColumns(): string {
  return row('#', 'op', 'outcome', 'expected', 'ok', 'reason');
}

/** One step's row; the reason is kept on one line. */
export function formatStepRow(r: StepResult): string {
  return row(String(r.index), r.op, r.outcome, r.expected ?? '-', r.ok ? 'ok' : 'FAIL', r.reason.replace(/\s*\n\s*/g, ' | '));
}

/** The closing line: PASSED, or FAILED with the steps that did not hold. */
export function formatSummary(result: ScenarioResult): string {
  const n = result.steps.length;
  const checked = result.steps.filter((s) => s.expected !== null).length;
  if (result.passed) {
    return `${result.name}: PASSED: all ${n} step${n === 1 ? '' : 's'} held (${checked} expectation${checked === 1 ? '' : 's'} checked)`;
  }
  const failed = result.steps.filter((s) => !s.ok);
  const list = failed.map((s) => `${s.index} (${s.op})`).join(', ');
  return `${result.name}: FAILED: ${failed.length} of ${n} step${n === 1 ? '' : 's'} did not hold: ${list}`;
}

function row(index: string, op: string, outcome: string, expected: string, ok: string, reason: string): string {
  return `${index.padStart(W.index)}  ${op.padEnd(W.op)}  ${outcome.padEnd(W.outcome)}  ${expected.padEnd(W.expected)}  ${ok.padEnd(W.ok)}  ${reason}`.trimEnd();
}
