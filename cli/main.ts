/**
 * The `heki` command: a table of sub-commands, each in cli/commands/. `heki --help` lists
 * them; `heki <command> --help` prints one command's usage. An unknown command or flag is
 * exit 2 with the problem named.
 *
 * Each command's module is imported only when that command runs (or prints its own usage):
 * `heki --help` loads this file and nothing else, so it answers at once instead of loading
 * the machine, the verifier and the kernel parsers that some commands need.
 */
import { EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from './command.ts';
import { checkMachineEnvironment } from './preflight.ts';
import { quoteForMessage } from '../shared/message-text.ts';

/** One row of the command table: what `heki --help` shows, and how to load the command. */
export interface CommandEntry {
  /** The word after `heki`. */
  readonly name: string;
  /** One line for `heki --help`. */
  readonly summary: string;
  /** True when the command starts a machine: the machine's environment is checked first (exit 2 when malformed). */
  readonly machine?: true;
  /** Imports the command's module. */
  load(): Promise<CliCommand>;
}

/** Every command, in the order `heki --help` lists them. */
export const COMMANDS: readonly CommandEntry[] = [
  {
    name: 'demo',
    summary: 'the demo npm start runs: the real kernel under Heki, signed modules, ftrace, attacks',
    machine: true,
    load: async () => (await import('./commands/demo.ts')).demoCommand,
  },
  {
    name: 'run',
    summary: 'run a scenario file (boot, modules, ftrace, attacks) and check each expect',
    machine: true,
    load: async () => (await import('./commands/run.ts')).runCommand,
  },
  {
    name: 'replay',
    summary: "decide a recorded run's requests again with plugins under development; list the verdicts that differ",
    load: async () => (await import('./commands/replay.ts')).replayCommand,
  },
  {
    name: 'plugin',
    summary: 'write a new verifier plugin and its test from a template (plugin new <name>)',
    load: async () => (await import('./commands/plugin.ts')).pluginCommand,
  },
  {
    name: 'attacks',
    summary: 'run the security regression catalogue: named attacks on a booted kernel, each must be stopped',
    machine: true,
    load: async () => (await import('./commands/attacks.ts')).attacksCommand,
  },
  {
    name: 'snapshot',
    summary: 'run a scenario, then write a signed migration snapshot of the VM (heki restore restores it)',
    machine: true,
    load: async () => (await import('./commands/snapshot.ts')).snapshotCommand,
  },
  {
    name: 'restore',
    summary: "restore a 'heki snapshot' into a fresh VM (checked, every protection re-applied); --attacks runs the catalogue on it",
    machine: true,
    load: async () => (await import('./commands/restore.ts')).restoreCommand,
  },
  {
    name: 'keygen',
    summary: 'generate an Ed25519 signing key pair (secret + public key files)',
    load: async () => (await import('./commands/keygen.ts')).keygenCommand,
  },
  {
    name: 'sign',
    summary: 'sign a kernel module with an Ed25519 key (replaces any existing signature)',
    load: async () => (await import('./commands/sign.ts')).signCommand,
  },
  {
    name: 'verify-module',
    summary: 'verify a kernel module signature (Ed25519 or PKCS#7) against keys and certificates',
    load: async () => (await import('./commands/verify-module.ts')).verifyModuleCommand,
  },
  {
    name: 'audit',
    summary: 'check the hash chain of a verifier audit log (audit verify <log>)',
    load: async () => (await import('./commands/audit.ts')).auditCommand,
  },
  {
    name: 'manifest',
    summary: 'build and sign the kernel manifest (text hash, ftrace/jump-label sites, exports) from vmlinuz + System.map',
    load: async () => (await import('./commands/manifest.ts')).manifestCommand,
  },
  {
    name: 'reference',
    summary: 'compare the simulated kernel with a real boot dump: text and module sections (reference check <folder|model>)',
    machine: true,
    load: async () => (await import('./commands/reference.ts')).referenceCommand,
  },
  {
    name: 'bench',
    summary: 'measure the verification ring, ftrace, module authentication, EPT, boot and failover',
    machine: true,
    load: async () => (await import('./commands/bench.ts')).benchCommand,
  },
];

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
  return { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), cwd: process.cwd(), errIsTTY: process.stderr.isTTY === true };
}

/** Runs `heki` with `argv` (without the node and script paths); resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo()): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const wanted = name === 'help' ? rest[0] : undefined;
    const entry = wanted ? COMMANDS.find((c) => c.name === wanted) : undefined;
    if (wanted && !entry) {
      io.err(`heki: unknown command '${quoteForMessage(wanted)}'\n\n${topUsage()}\n`);
      return EXIT_USAGE;
    }
    io.out(`${entry ? (await entry.load()).usage : topUsage()}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  if (name === '--version' || name === '-V') {
    io.out('heki-sim 0.1.0\n');
    return EXIT_OK;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    io.err(`heki: unknown command '${quoteForMessage(name)}'\n\n${topUsage()}\n`);
    return EXIT_USAGE;
  }
  const cmd = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    io.out(`${cmd.usage}\n`);
    return EXIT_OK;
  }
  if (entry.machine) {
    const env = checkMachineEnvironment();
    if (!env.ok) {
      io.err(`heki ${entry.name}: ${env.error}\n`);
      return EXIT_USAGE;
    }
  }
  return cmd.run(rest, io);
}
