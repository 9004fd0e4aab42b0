/**
 * `heki attacks`: runs the security regression catalogue (guest/attacks/, runtime/attacks.ts)
 * and says, per attack, whether it was stopped and by what. Exit 0 when every attack was
 * stopped, 1 when one was not (an attack that could not run counts as not stopped), 2 on bad
 * usage: an unknown attack name (named) or missing kernel fixtures (where they were looked for).
 */
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, withUsage } from '../args.ts';
import { Progress } from '../progress.ts';
import type { runAttacks as RunAttacks } from '../../runtime/attacks.ts';

const USAGE = `usage: heki attacks [NAME...] [--json]
       heki attacks --list [NAME...] [--json]

Runs the security regression catalogue: each named attack (every attack when none is named)
acts as an attacker who owns the guest kernel after boot, on its own freshly booted machine
with the real Debian 6.1 kernel, and checks whether the protection held. A table shows each
attack, whether it was stopped and what stopped it (the guest's fault or status, then what the
host recorded: the VM exit, the refusing audit record). docs/threat-model.md explains them.

Exit 0 when every attack was stopped, 1 when one was not (an attack that fails to run counts
as not stopped), 2 on bad usage: an unknown attack name, or missing kernel fixtures (the
message says where they were looked for; set HEKI_FIXTURES).

  --json   print one JSON object
           {"attacks":[{"name","stopped","stop","detail"}],"total","stopped"}
           (with --list: {"attacks":[{"name","title","expectedStop"}]})
  --list   list the attacks (name, what the attacker does, the expected stop); run nothing

Progress ("12/57 done") goes to stderr: redrawn in place on a terminal, one line per
finished attack otherwise; stdout holds only the table or the JSON object.
`;

/** How the command runs (tests point it at another fixture folder, or at a scripted runner). */
export interface AttacksCommandOptions {
  /** Where the fixtures are (default: `$HEKI_FIXTURES` or the folder beside the repository). */
  readonly fixtureDir?: string;
  /** The runner (default: runtime/attacks.ts's runAttacks). */
  readonly runAttacks?: typeof RunAttacks;
}

/** Makes the command (tests point it at another fixture folder). */
export function createAttacksCommand(options: AttacksCommandOptions = {}): CliCommand {
  return {
    name: 'attacks',
    usage: USAGE,
    run(argv: string[], io: CliIo): Promise<number> {
      return withUsage(USAGE, io, argv, async () => {
        const { values, positionals } = parseFlags(
          argv,
          { json: { type: 'boolean', default: false }, list: { type: 'boolean', default: false } },
          { min: 0, max: Number.MAX_SAFE_INTEGER, names: '[NAME...]' },
        );
        // Loaded on first use, so that `heki --help` does not load the machine.
        const runtime = await import('../../runtime/attacks.ts');
        const selected = runtime.selectAttacks(positionals);
        if (!selected.ok) {
          io.err(`heki attacks: ${selected.error.message} (run 'heki attacks --list' for the names)\n`);
          return EXIT_USAGE;
        }
        if (values.list) {
          const list = selected.value.map(({ name, title, expectedStop }) => ({ name, title, expectedStop }));
          if (values.json) io.out(`${JSON.stringify({ attacks: list })}\n`);
          else io.out(`${list.map((a) => `${a.name}\n    ${a.title}\n    expected stop: ${a.expectedStop}`).join('\n')}\n${list.length} attacks\n`);
          return EXIT_OK;
        }
        const names = selected.value.map((a) => a.name);
        const width = Math.max('attack'.length, ...names.map((n) => n.length));
        const started = performance.now();
        // Rows come back as attacks finish; print them in catalogue order, under a header
        // printed with the first row (a run that cannot start prints no table).
        const done: Array<{ name: string; stopped: boolean; stop: string } | undefined> = [];
        let printed = 0;
        let finished = 0;
        const progress = new Progress(io, 'heki attacks');
        progress.status(`0/${names.length} done, booting the first kernels...`);
        const run = await (options.runAttacks ?? runtime.runAttacks)(names, {
          ...(options.fixtureDir !== undefined ? { fixtureDir: options.fixtureDir } : {}),
          onReport: (r, i) => {
            done[i] = r;
            finished++;
            progress.step(`${finished}/${names.length} done (${r.name}: ${r.stopped ? 'stopped' : 'NOT stopped'})`);
            if (values.json) return;
            if (printed === 0 && done[0]) progress.out(`running ${names.length} attack${names.length === 1 ? '' : 's'}, each on a freshly booted Debian 6.1 kernel\n${'attack'.padEnd(width)}  stopped  stop\n`);
            while (done[printed]) {
              const d = done[printed]!;
              progress.out(`${d.name.padEnd(width)}  ${(d.stopped ? 'yes' : 'NO').padEnd('stopped'.length)}  ${d.stop}\n`);
              printed++;
            }
          },
        });
        progress.done();
        if (!run.ok) {
          io.err(`heki attacks: ${run.error.message}\n`);
          return EXIT_USAGE;
        }
        const r = run.value;
        if (values.json) {
          const attacks = r.attacks.map(({ name, stopped, stop, detail }) => ({ name, stopped, stop, detail }));
          io.out(`${JSON.stringify({ attacks, total: r.total, stopped: r.stopped })}\n`);
        } else {
          const secs = ((performance.now() - started) / 1000).toFixed(1);
          const failed = r.attacks.filter((a) => !a.stopped);
          io.out(`${r.stopped} of ${r.total} attacks stopped in ${secs} s${failed.length ? `; NOT stopped: ${failed.map((a) => a.name).join(', ')}` : ''}\n`);
          for (const a of failed) io.out(`\n${a.name}: ${a.stop}\n  ${a.detail}\n`);
        }
        return r.stopped === r.total ? EXIT_OK : EXIT_NEGATIVE;
      });
    },
  };
}

/** The `heki attacks` command. */
export const attacksCommand: CliCommand = createAttacksCommand();
