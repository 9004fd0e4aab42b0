/**
 * The shape every `heki` sub-command has. `cli/main.ts` keeps the table of commands; each
 * command lives in `cli/commands/<name>.ts` and exports one {@link CliCommand}; its one-line
 * summary is in main.ts's table, so `heki --help` needs no command module.
 *
 * Exit codes are a contract users' scripts rely on: 0 success / accepted, 1 a negative
 * result (denied, attack not stopped, expectation failed, tampered log), 2 bad usage or
 * malformed input.
 */

/** Where a command writes. Tests pass buffers; the real CLI passes process streams. */
export interface CliIo {
  out(text: string): void;
  err(text: string): void;
  /** The directory relative paths resolve against. */
  cwd: string;
  /** True when stderr is a terminal: progress is redrawn in place there (cli/progress.ts). */
  errIsTTY?: boolean;
}

/** Exit codes of every command. */
export const EXIT_OK = 0;
export const EXIT_NEGATIVE = 1;
export const EXIT_USAGE = 2;

/** One sub-command of `heki`. */
export interface CliCommand {
  /** The word after `heki` (for nested commands like `audit verify`, the first word). */
  readonly name: string;
  /** The full usage text printed by `heki <name> --help` and after a usage error. */
  readonly usage: string;
  /** Runs the command; resolves to its exit code. Must not throw for bad input. */
  run(argv: string[], io: CliIo): Promise<number>;
}
