/**
 * What running a scenario reports: one {@link StepResult} per step and a
 * {@link ScenarioResult} for the whole run. These are exactly the objects `heki run --json`
 * prints (users' regression suites parse them), so their keys and key order are a contract:
 * `{"name","passed","steps":[{"index","op","outcome","reason","expected","ok"}]}`.
 */
import type { StepOutcome } from '../machine/machine-api.ts';
import type { Expectation, StepKind } from './scenario.ts';

/** The result of one step. */
export interface StepResult {
  /** 1-based position of the step in the file. */
  readonly index: number;
  readonly op: StepKind;
  readonly outcome: StepOutcome['outcome'];
  readonly reason: string;
  /** The step's `expect`, or null. */
  readonly expected: Expectation | null;
  /** No `expect` and no error, or the outcome equals the expectation. */
  readonly ok: boolean;
}

/** The result of a whole run. */
export interface ScenarioResult {
  readonly name: string;
  /** Every step is ok. */
  readonly passed: boolean;
  readonly steps: readonly StepResult[];
}

/**
 * Whether a step holds: with no expectation, anything but `error`; with one, exactly it (so
 * an `error` outcome always fails its step).
 */
export function stepHolds(outcome: StepOutcome['outcome'], expected: Expectation | null): boolean {
  return expected === null ? outcome !== 'error' : outcome === expected;
}

/** Builds a step result with the contract's key order. */
export function stepResult(index: number, op: StepKind, outcome: StepOutcome['outcome'], reason: string, expected: Expectation | null): StepResult {
  return { index, op, outcome, reason, expected, ok: stepHolds(outcome, expected) };
}

/** Builds the run's result with the contract's key order. */
export function scenarioResult(name: string, steps: readonly StepResult[]): ScenarioResult {
  return { name, passed: steps.every((s) => s.ok), steps };
}
