/** The outputs `heki run` offers, in the order their flags appear in its --help. */
import type { RunOutput } from './run-output.ts';
import { recordOutput } from './record.ts';
import { traceOutput } from './trace.ts';
import { reportOutput } from './report.ts';

export const RUN_OUTPUTS: readonly RunOutput[] = [recordOutput, traceOutput, reportOutput];
