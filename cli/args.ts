/**
 * Strict flag parsing for the `heki` commands, on node:util's parseArgs. An unknown flag, a
 * missing value or a stray positional becomes a {@link UsageError} naming the problem, which
 * the command turns into exit code 2 with its usage text.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { quoteForMessage } from '../shared/message-text.ts';

/** Bad command-line usage; the message names the problem. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** The parsed flags and positionals of one command line. */
export interface ParsedArgs<O extends Options> {
  values: ReturnType<typeof parseArgs<{ options: O; allowPositionals: true; strict: true }>>['values'];
  positionals: string[];
}

/**
 * Parses `argv` against `options`. `positionals` bounds how many positionals are allowed.
 * Throws {@link UsageError} with a readable message on any problem.
 */
export function parseFlags<O extends Options>(argv: string[], options: O, positionals: { min: number; max: number; names: string }): ParsedArgs<O> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(cleanParseArgsMessage(e));
  }
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new UsageError(`missing ${positionals.names}`);
  if (n > positionals.max) {
    throw new UsageError(`unexpected argument '${quoteForMessage(parsed.positionals[positionals.max]!)}'`);
  }
  return { values: parsed.values as ParsedArgs<O>['values'], positionals: parsed.positionals };
}

function cleanParseArgsMessage(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  // node's messages carry a hint about '--' that means nothing to our users.
  // The message quotes the user's flag: cut and escaped like every echoed input.
  return quoteForMessage(msg.replace(/\. To specify a positional argument.*$/s, '').replace(/^TypeError \[[A-Z_]+\]: /, ''), 200);
}

/**
 * Runs a command's `body`: `--help` or `-h` anywhere in `argv` prints `usage` and exits 0;
 * a {@link UsageError} becomes exit 2 with the message and the usage text. Any other exception
 * is an internal error: reported by name and message (the stack with HEKI_DEBUG=1), exit 2 as well, so a script never mistakes a
 * crash for a verdict.
 */
export async function withUsage(
  usage: string,
  io: { out(text: string): void; err(text: string): void },
  argv: readonly string[],
  body: () => Promise<number>,
): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(usage.endsWith('\n') ? usage : `${usage}\n`);
    return 0;
  }
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`heki: ${e.message}\n\n${usage}\n`);
      return 2;
    }
    // A bug, not bad input: no stack trace for users (HEKI_DEBUG=1 shows it to developers).
    const debug = process.env['HEKI_DEBUG'] === '1';
    const what = e instanceof Error ? (debug ? (e.stack ?? e.message) : `${e.name}: ${e.message}`) : String(e);
    io.err(`heki: internal error: ${debug ? what : `${quoteForMessage(what, 300)} (set HEKI_DEBUG=1 for the stack)`}\n`);
    return 2;
  }
}
