/**
 * Runs the `heki` command in process, as the CLI tests do: the exit code and everything it
 * wrote to stdout and stderr.
 */
import { main } from '../../cli/main.ts';

/** What one `heki` invocation did. */
export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

/** `heki <argv>` with relative paths resolved against `cwd` (default: this process's). */
export async function heki(argv: string[], cwd: string = process.cwd()): Promise<CliRun> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (s) => void (out += s), err: (s) => void (err += s), cwd });
  return { code, out, err };
}
