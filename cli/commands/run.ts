/**
 * `heki run`: runs a scenario file (docs/scenarios.md) on a simulated machine and checks
 * each step's outcome against its `expect`. Exit 0 when every step held, 1 when one did not
 * (or the machine failed to start), 2 for bad usage or bad input: a malformed scenario (each
 * problem as `file:line: message`), an unreadable or malformed key file, missing kernel files.
 */
import { CPU_FLAG, CPU_FLAG_USAGE, cpuFlagModel } from '../cpu-flag.ts';
import { HYPERVISOR_FLAG, HYPERVISOR_FLAG_USAGE, hypervisorFlag } from '../hypervisor-flag.ts';
import { resolve } from 'node:path';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliCommand, type CliIo } from '../command.ts';
import { readableFile, readScenarioInput } from '../scenario-input.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { err, type Result } from '../../shared/result.ts';
import type { MachineApi } from '../../machine/machine-api.ts';
import type { MachineConfig } from '../../machine/machine.ts';
import { fixturePaths } from '../../shared/kernel-image/fixture-paths.ts';
import { runScenario } from '../../scenario/run.ts';
import type { Scenario } from '../../scenario/scenario.ts';
import type { ScenarioResult } from '../../scenario/outcome.ts';
import { formatColumns, formatHeader, formatStepRow, formatSummary } from '../../scenario/table.ts';
import { RUN_OUTPUTS } from '../run-outputs/index.ts';
import { auditNotice, preflight } from '../preflight.ts';
import type { RunOutputSession } from '../run-outputs/run-output.ts';
import { fanOut } from '../../hypervisor/observe/vm-observer.ts';

const OUTPUT_FLAGS = RUN_OUTPUTS.map((o) => ` [--${o.flag} <${o.file}>]`).join('');

const USAGE = `usage: heki run <scenario.yaml> [--json] [--cpu <name|folder>] [--step-timeout <seconds>] [--audit <log>]${OUTPUT_FLAGS}
       heki run <scenario.yaml> --check

Runs a scenario: boots a simulated machine (the real Debian 6.1 kernel or a synthetic
one) with the scenario's keys, performs its steps in order and checks each outcome
(allowed, denied or error) against the step's 'expect'. The format is in docs/scenarios.md;
relative paths in the file resolve against the file's folder.

Exit 0 when every step held, 1 when one did not (an 'error' outcome fails its step) or the
machine failed to start, 2 on bad usage, a malformed scenario (the line and the problem
named), an unreadable or malformed key file, an input that is not a regular file of bounded
size, or missing kernel files (the scenario's vmlinuz/system-map, or the fixtures': the
message says where they were looked for).

  --json                  print one JSON object
                          {"name","passed","steps":[{"index","op","outcome","reason","expected","ok"}]}
  --check                 only check the file (exit 0 if well-formed, 2 if not); no machine
${CPU_FLAG_USAGE}                          (overrides the scenario's cpu:)
${HYPERVISOR_FLAG_USAGE}                          (overrides the scenario's hypervisor:)
  --step-timeout <secs>   how long one step may take before it is an error (default 300)
  --audit <log>           append every verdict to this hash-chained audit log (JSON lines;
                          check it with 'heki audit verify <log>')
${RUN_OUTPUTS.map((o) => o.usage).join('')}
A file that an output (or --audit) cannot write, two of them naming one file, an existing
audit log whose chain is broken, kernel files the scenario names that are not a bzImage or a
System.map, and a malformed HEKI_VERIFIER_TIMEOUT_MS are exit 2 before anything runs; a
failure while writing is reported after the run (exit 1). The outputs never change verdicts.
With --audit the run says where the verdicts went. The --record log is gzip-compressed.
`;

/**
 * Why a machine did not start: `input` when a host file it needs is missing or bad (exit 2),
 * `start` when it failed for another reason (exit 1). A plain string counts as `start`.
 */
export interface MachineStartError {
  readonly kind: 'input' | 'start';
  readonly message: string;
}

/** Builds the machine a scenario runs on; the error names what stopped it. */
export type MachineFactory = (config: MachineConfig) => Promise<Result<MachineApi, string | MachineStartError>>;

/**
 * The real factory: checks that the kernel files exist (the fixtures', unless the scenario
 * names its own), then runs machine/machine.ts's createMachine, imported on first use so that
 * `heki --help` and the other commands do not load the whole machine.
 */
const createRealMachine: MachineFactory = async (config) => {
  if (config.kernel === 'real') {
    const fx = fixturePaths();
    const wanted = [config.vmlinuz ?? fx.vmlinuz, config.systemMap ?? fx.systemMap];
    const missing = wanted.filter((p) => !readableFile(p).ok);
    if (missing.length > 0) {
      const own = config.vmlinuz !== undefined && config.systemMap !== undefined;
      return err({
        kind: 'input',
        message: `kernel files not found: looked for ${missing.join(' and ')}${own ? '' : ` (the fixtures folder is ${fx.dir}: set HEKI_FIXTURES, or name vmlinuz and system-map in the scenario)`}`,
      });
    }
  }
  let mod: typeof import('../../machine/machine.ts');
  try {
    mod = await import('../../machine/machine.ts');
  } catch (e) {
    return err(`the machine (machine/machine.ts) could not be loaded: ${e instanceof Error ? e.message : String(e)}`);
  }
  // The detailed form keeps whether a failure was bad input (a malformed vmlinuz or
  // System.map named by the scenario: exit 2) or a machine that would not start (exit 1).
  return mod.createMachineDetailed(config);
};

/** The machine configuration a scenario asks for. */
export function machineConfigOf(s: Scenario): MachineConfig {
  return {
    kernel: s.kernel,
    ...(s.vmlinuz !== undefined ? { vmlinuz: s.vmlinuz } : {}),
    ...(s.systemMap !== undefined ? { systemMap: s.systemMap } : {}),
    keys: { pubkeys: s.keys.pubkeys, certs: s.keys.certs, revoked: s.keys.revoked },
    ...(s.cpu !== undefined ? { cpu: s.cpu } : {}),
    ...(s.hypervisor !== undefined ? { hypervisor: s.hypervisor } : {}),
  };
}

function parseTimeout(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const secs = Number(text);
  if (!/^\d+(\.\d+)?$/.test(text) || !(secs > 0) || secs > 86_400) {
    throw new UsageError(`--step-timeout must be a number of seconds between 0 and 86400, got '${text}'`);
  }
  return secs * 1000;
}

/**
 * Finishes every output (each is finished even when another failed); prints each one's line
 * (to stderr under --json, so stdout stays one object) or its problem. True when all wrote.
 */
async function finishOutputs(sessions: readonly RunOutputSession[], result: ScenarioResult | undefined, io: CliIo, json = false): Promise<boolean> {
  let all = true;
  for (const s of sessions) {
    let r: Result<string, string>;
    try {
      r = await s.finish(result);
    } catch (e) {
      r = err(e instanceof Error ? e.message : String(e));
    }
    if (!r.ok) {
      all = false;
      io.err(`heki run: ${r.error}\n`);
    } else if (result !== undefined) {
      if (json) io.err(`${r.value}\n`);
      else io.out(`${r.value}\n`);
    }
  }
  return all;
}

/** Makes the `heki run` command on `factory` (tests pass a scripted machine). */
export function createRunCommand(factory: MachineFactory = createRealMachine): CliCommand {
  return {
    name: 'run',
    usage: USAGE,
    run(argv: string[], io: CliIo): Promise<number> {
      return withUsage(USAGE, io, argv, async () => {
        const { values, positionals } = parseFlags(
          argv,
          {
            json: { type: 'boolean', default: false },
            check: { type: 'boolean', default: false },
            'step-timeout': { type: 'string' },
            audit: { type: 'string' },
            ...CPU_FLAG,
            ...HYPERVISOR_FLAG,
            ...Object.fromEntries(RUN_OUTPUTS.map((o) => [o.flag, { type: 'string' as const }])),
          },
          { min: 1, max: 1, names: '<scenario.yaml>' },
        );
        if (values.check && values.json) throw new UsageError('--check and --json cannot be combined');
        if (values.check && values['step-timeout'] !== undefined) throw new UsageError('--check runs no steps; --step-timeout does not apply');
        const outputFlags = RUN_OUTPUTS.filter((o) => (values as Record<string, unknown>)[o.flag] !== undefined);
        if (values.check && outputFlags.length > 0) throw new UsageError(`--check runs no steps; --${outputFlags[0]!.flag} does not apply`);
        const stepTimeoutMs = parseTimeout(values['step-timeout']);
        const cpu = cpuFlagModel(values.cpu, io);
        const hypervisor = hypervisorFlag(values.hypervisor);
        const display = positionals[0]!;
        const scenario = readScenarioInput(io, display, 'run');
        if (!scenario) return EXIT_USAGE;
        if (values.check) {
          io.out(`${display}: ok: scenario '${scenario.name}', ${scenario.steps.length} step${scenario.steps.length === 1 ? '' : 's'}\n`);
          return EXIT_OK;
        }

        const auditPath = values.audit !== undefined ? resolve(io.cwd, values.audit) : undefined;
        const planned = preflight({
          files: outputFlags.map((o) => ({ flag: `--${o.flag}`, path: resolve(io.cwd, String((values as Record<string, unknown>)[o.flag])) })),
          ...(auditPath !== undefined ? { audit: auditPath } : {}),
        });
        if (!planned.ok) {
          io.err(`heki run: ${planned.error}\n`);
          return EXIT_USAGE;
        }
        const sessions: RunOutputSession[] = [];
        for (const o of outputFlags) {
          const path = resolve(io.cwd, String((values as Record<string, unknown>)[o.flag]));
          const s = o.open(path, { io, scenario, display });
          if (!s.ok) {
            await finishOutputs(sessions, undefined, io);
            io.err(`heki run: --${o.flag} ${path}: ${s.error}\n`);
            return EXIT_USAGE;
          }
          sessions.push(s.value);
        }
        const observers = sessions.flatMap((s) => (s.observer ? [s.observer] : []));

        let machine: Result<MachineApi, string | MachineStartError>;
        try {
          machine = await factory({
            ...machineConfigOf(scenario),
            ...(cpu !== undefined ? { cpu } : {}),
            ...(hypervisor !== undefined ? { hypervisor } : {}),
            ...(auditPath !== undefined ? { auditPath } : {}),
            ...(observers.length > 0 ? { observer: fanOut(observers) } : {}),
          });
        } catch (e) {
          machine = err(e instanceof Error ? e.message : String(e));
        }
        if (!machine.ok) {
          const e = typeof machine.error === 'string' ? { kind: 'start' as const, message: machine.error } : machine.error;
          io.err(`heki run: ${display}: cannot start the machine: ${e.message}\n`);
          await finishOutputs(sessions, undefined, io);
          return e.kind === 'input' ? EXIT_USAGE : EXIT_NEGATIVE;
        }

        if (!values.json) {
          io.out(`${formatHeader(scenario, display)}\n${formatColumns()}\n`);
        }
        const result = await runScenario(
          scenario,
          machine.value,
          (r, step, outcome) => {
            const now = performance.now();
            for (const s of sessions) s.stepFinished?.(r, step, outcome, now);
            if (!values.json) io.out(`${formatStepRow(r)}\n`);
          },
          {
            ...(stepTimeoutMs !== undefined ? { stepTimeoutMs } : {}),
            onWarning: (m) => io.err(`heki run: warning: ${m}\n`),
            ...(sessions.length > 0
              ? {
                  onStepStart: (step) => {
                    const now = performance.now();
                    for (const s of sessions) s.stepStarted?.(step, now);
                  },
                  beforeDispose: async (m) => {
                    for (const s of sessions) await s.beforeDispose?.(m);
                  },
                }
              : {}),
          },
        );
        io.out(values.json ? `${JSON.stringify(result)}\n` : `${formatSummary(result)}\n`);
        if (auditPath !== undefined) {
          const line = auditNotice(auditPath);
          if (values.json) io.err(line);
          else io.out(line);
        }
        const written = await finishOutputs(sessions, result, io, values.json);
        return result.passed && written ? EXIT_OK : EXIT_NEGATIVE;
      });
    },
  };
}

/** The `heki run` command. */
export const runCommand: CliCommand = createRunCommand();
