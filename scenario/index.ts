/** Scenarios: the YAML format `heki run` reads, its parser and its runner (docs/scenarios.md). */
export * from './scenario.ts';
export * from './outcome.ts';
export * from './problems.ts';
export * from './parse.ts';
export * from './load.ts';
export * from './run.ts';
export * from './table.ts';
export * from './scripted-machine.ts';
export { STEP_SPECS, LIMITS, generateJitImage, type StepSpec, type StepContext } from './steps.ts';
