/**
 * The `heki` command: a table of sub-commands, each in cli/commands/. `heki --help` lists
 * them; `heki <command> --help` prints one command's usage. An unknown command or flag is
 * exit 2 with the problem named.
 */
import { EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from './command.ts';
import { attacksCommand } from './commands/attacks.ts';
import { auditCommand } from './commands/audit.ts';
import { benchCommand } from './commands/bench.ts';
import { demoCommand } from './commands/demo.ts';
import { keygenCommand } from './commands/keygen.ts';
import { manifestCommand } from './commands/manifest.ts';
import { pluginCommand } from './commands/plugin.ts';
import { runCommand } from './commands/run.ts';
import { signCommand } from './commands/sign.ts';
import { snapshotCommand } from './commands/snapshot.ts';
import { restoreCommand } from './commands/restore.ts';
import { replayCommand } from './commands/replay.ts';
import { referenceCommand } from './commands/reference.ts';
import { verifyModuleCommand } from './commands/verify-module.ts';

/** Every command, in the order `heki --help` lists them. */
export const COMMANDS: readonly CliCommand[] = [demoCommand, runCommand, replayCommand, pluginCommand, attacksCommand, snapshotCommand, restoreCommand, keygenCommand, signCommand, verifyModuleCommand, auditCommand, manifestCommand, referenceCommand, benchCommand];

/** Top-level usage text. */
export function topUsage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const lines = COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return [
    'heki: a simulator of hypervisor-enforced kernel integrity (Heki) with an isolated verifier VM',
    '',
    'Usage: heki <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    "Run 'heki <command> --help' for a command's options.",
    'Exit codes: 0 success/accepted, 1 denied/failed expectation/tampered, 2 bad usage or malformed input.',
  ].join('\n');
}

/** Process-backed io. */
export function processIo(): CliIo {
  return { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), cwd: process.cwd() };
}

/** Runs `heki` with `argv` (without the node and script paths); resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const wanted = name === 'help' ? rest[0] : undefined;
    const cmd = wanted ? COMMANDS.find((c) => c.name === wanted) : undefined;
    if (wanted && !cmd) {
      io.err(`heki: unknown command '${wanted}'\n\n${topUsage()}\n`);
      return EXIT_USAGE;
    }
    io.out(`${cmd ? cmd.usage : topUsage()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version' || name === '-V') {
    io.out('heki-sim 0.1.0\n');
    return EXIT_OK;
  }
  const cmd = COMMANDS.find((c) => c.name === name);
  if (!cmd) {
    io.err(`heki: unknown command '${name}'\n\n${topUsage()}\n`);
    return EXIT_USAGE;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`${cmd.usage}\n`);
    return EXIT_OK;
  }
  return cmd.run(rest, io);
}
