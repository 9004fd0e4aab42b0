/**
 * `heki attacks`: runs the security regression catalogue (guest/attacks/, checks/attacks.ts)
 * and says, per attack, whether it was stopped and by what. Exit 0 when every attack was
 * stopped, 1 when one was not (an attack that could not run counts as not stopped), 2 on bad
 * usage: an unknown attack name (named) or missing kernel fixtures (where they were looked for).
 */
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, withUsage } from '../args.ts';
import { CPU_FLAG, CPU_FLAG_USAGE, cpuFlagModel } from '../cpu-flag.ts';
import { HYPERVISOR_FLAG, HYPERVISOR_FLAG_USAGE, hypervisorFlag } from '../hypervisor-flag.ts';
import { Progress } from '../progress.ts';
import type { runAttacks as RunAttacks } from '../../checks/attacks.ts';
import type { Attack } from '../../guest/attacks/attack.ts';
import { describeCpuNeeds } from '../../guest/attacks/cpu-needs.ts';

const USAGE = `usage: heki attacks [NAME...] [--cpu MODEL] [--hypervisor kvm|hyperv] [--boot-each] [--json]
       heki attacks --list [NAME...] [--json]

Runs the security regression catalogue: each named attack (every attack when none is named)
acts as an attacker who owns the guest kernel after boot (the boot-* attacks: its boot code
too, rebooting the VM and tampering with the text touch-ups before heki_late_init), on its own
machine with the real Debian 6.1 kernel in its booted state, and checks whether the protection
held. The machines are forks of one booted machine per configuration the attacks share (the
kernel boots once, each fork is a copy of the booted VM and its verifier state, docs/fork.md);
a configuration only one attack needs boots its own. A table shows each
attack, whether it was stopped and what stopped it (the guest's fault or status, then what the
host recorded: the VM exit, the refusing audit record). docs/threat-model.md explains them.

An attack that needs something of the CPU model the machine does not have (return thunks on
a CPU without X86_FEATURE_RETHUNK, SMP lock prefixes on a one-CPU guest) is not run: its row
says "n/a" and why; it is neither stopped nor a failure. So does an attack the hypervisor's
ABI cannot express (--hypervisor hyperv: LVBS has no text-patch, set_memory or code-image
call; docs/hypervisors.md lists them).

Exit 0 when every attack that applies was stopped, 1 when one was not (an attack that fails to
run counts as not stopped), 2 on bad usage: an unknown attack name or CPU model, or missing
kernel fixtures (the message says where they were looked for; set HEKI_FIXTURES).

  --json       print one JSON object
               {"attacks":[{"name","stopped","applicable","stop","detail"}],"total","stopped",
                "notApplicable","cpu","hypervisor"}
               (with --list: {"attacks":[{"name","title","expectedStop"}]})
  --list       list the attacks (name, what the attacker does, the expected stop, the CPU
               models it applies to); run nothing
  --boot-each  boot a machine per attack instead of forking one booted machine

Progress ("12/57 done") goes to stderr: redrawn in place on a terminal, one line per
finished attack otherwise; stdout holds only the table or the JSON object.
${CPU_FLAG_USAGE}${HYPERVISOR_FLAG_USAGE}`;

/** `\n    applies to: <needs>` for an attack that needs something of the CPU model, else nothing. */
function appliesTo(a: Attack): string {
  return a.needs?.cpu ? `\n    applies to: ${describeCpuNeeds(a.needs.cpu)}` : '';
}

/** How the command runs (tests point it at another fixture folder, or at a scripted runner). */
export interface AttacksCommandOptions {
  /** Where the fixtures are (default: `$HEKI_FIXTURES` or the folder beside the repository). */
  readonly fixtureDir?: string;
  /** The runner (default: checks/attacks.ts's runAttacks). */
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
          {
            json: { type: 'boolean', default: false },
            list: { type: 'boolean', default: false },
            'boot-each': { type: 'boolean', default: false },
            ...CPU_FLAG,
            ...HYPERVISOR_FLAG,
          },
          { min: 0, max: Number.MAX_SAFE_INTEGER, names: '[NAME...]' },
        );
        const cpu = cpuFlagModel(values.cpu, io);
        const hypervisor = hypervisorFlag(values.hypervisor);
        // Loaded on first use, so that `heki --help` does not load the machine.
        const runtime = await import('../../checks/attacks.ts');
        const selected = runtime.selectAttacks(positionals);
        if (!selected.ok) {
          io.err(`heki attacks: ${selected.error.message} (run 'heki attacks --list' for the names)\n`);
          return EXIT_USAGE;
        }
        if (values.list) {
          const list = selected.value.map(({ name, title, expectedStop }) => ({ name, title, expectedStop }));
          if (values.json) io.out(`${JSON.stringify({ attacks: list })}\n`);
          else {
            const text = list.map(
              (a) => `${a.name}\n    ${a.title}\n    expected stop: ${a.expectedStop}${appliesTo(selected.value.find((x) => x.name === a.name)!)}`,
            );
            io.out(`${text.join('\n')}\n${list.length} attacks\n`);
          }
          return EXIT_OK;
        }
        const names = selected.value.map((a) => a.name);
        const width = Math.max('attack'.length, ...names.map((n) => n.length));
        const started = performance.now();
        // Rows come back as attacks finish; print them in catalogue order, under a header
        // printed with the first row (a run that cannot start prints no table).
        const done: Array<{ name: string; stopped: boolean; applicable: boolean; stop: string } | undefined> = [];
        let printed = 0;
        let finished = 0;
        const progress = new Progress(io, 'heki attacks');
        progress.status(`0/${names.length} done, booting the first kernels...`);
        const run = await (options.runAttacks ?? runtime.runAttacks)(names, {
          ...(options.fixtureDir !== undefined ? { fixtureDir: options.fixtureDir } : {}),
          ...(cpu !== undefined ? { cpu } : {}),
          ...(values['boot-each'] ? { fork: false } : {}),
          ...(hypervisor !== undefined ? { hypervisor } : {}),
          onReport: (r, i) => {
            done[i] = r;
            finished++;
            progress.step(`${finished}/${names.length} done (${r.name}: ${r.stopped ? 'stopped' : 'NOT stopped'})`);
            if (values.json) return;
            if (printed === 0 && done[0])
              progress.out(
                `running ${names.length} attack${names.length === 1 ? '' : 's'}, each on its own machine with a booted Debian 6.1 kernel${values['boot-each'] ? ' (one boot per attack)' : ''}${values.cpu !== undefined ? ` (CPU model ${values.cpu})` : ''}\n${'attack'.padEnd(width)}  stopped  stop\n`,
              );
            while (done[printed]) {
              const d = done[printed]!;
              progress.out(`${d.name.padEnd(width)}  ${(d.stopped ? 'yes' : d.applicable ? 'NO' : 'n/a').padEnd('stopped'.length)}  ${d.stop}\n`);
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
        const failed = r.attacks.filter((a) => a.applicable && !a.stopped);
        if (values.json) {
          const attacks = r.attacks.map(({ name, stopped, applicable, stop, detail }) => ({ name, stopped, applicable, stop, detail }));
          io.out(
            `${JSON.stringify({ attacks, total: r.total, stopped: r.stopped, notApplicable: r.notApplicable, cpu: r.cpu, hypervisor: r.hypervisor ?? 'kvm' })}\n`,
          );
        } else {
          const secs = ((performance.now() - started) / 1000).toFixed(1);
          const na = r.notApplicable
            ? ` (${r.notApplicable} not applicable on CPU model ${r.cpu}${r.hypervisor === 'hyperv' ? ' or hypervisor hyperv' : ''}: ${r.attacks
                .filter((a) => !a.applicable)
                .map((a) => a.name)
                .join(', ')})`
            : '';
          io.out(
            `${r.stopped} of ${r.total} attacks stopped in ${secs} s${na}${failed.length ? `; NOT stopped: ${failed.map((a) => a.name).join(', ')}` : ''}\n`,
          );
          for (const a of failed) io.out(`\n${a.name}: ${a.stop}\n  ${a.detail}\n`);
        }
        return failed.length === 0 ? EXIT_OK : EXIT_NEGATIVE;
      });
    },
  };
}

/** The `heki attacks` command. */
export const attacksCommand: CliCommand = createAttacksCommand();
