/**
 * `heki bench`: the performance benchmark (bench/run.ts): round trips over comlink and over
 * the verification ring, batched patch verification, ftrace on every site of the real
 * kernel, module authentication, EPT checks, boot and lock, verifier failover. A table with
 * the targets (met or missed), or with --json one object with exactly the report's keys.
 */
import { EXIT_NEGATIVE, EXIT_OK, type CliCommand, type CliIo } from '../command.ts';
import { parseFlags, withUsage } from '../args.ts';
import { CPU_FLAG, CPU_FLAG_USAGE, cpuFlagModel } from '../cpu-flag.ts';
import { formatReport, runBench } from '../../bench/run.ts';
import { progressBar } from '../../bench/progress.ts';

const USAGE = `usage: heki bench [--json] [--quick] [--scaling] [--cpu <name|folder>]

Measures, in one run: one request's round trip core -> verifier -> core over comlink and over
the verification ring (p50, p99); batched text-patch verifications per second; ftrace on all
sites of the real kernel, end to end; module authentication of the real fixture modules
(MB/s); EPT access checks per second; boot and lock of the real kernel; a fork of a booted
machine (fork_ms: bootBase once, fork() with a warm verifier); verifier failover
after an injected crash, and requests lost. Prints a table with the targets met or missed and
a progress bar on stderr. Figures that need the kernel fixtures are null without them, with
the reason. Exit 0 when every part ran, 1 when one failed.

  --json    one JSON object: the figures (null when not measured) and "machine"
  --quick   tiny iteration counts (a smoke run; the figures are rough)
  --scaling also measure how costs grow with guest RAM, modules and patch sites (table rows)
${CPU_FLAG_USAGE}                          (the model of every machine the benchmark boots)
`;

/** The `heki bench` command. */
export const benchCommand: CliCommand = {
  name: 'bench',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const { values } = parseFlags(
        argv,
        { json: { type: 'boolean' }, quick: { type: 'boolean' }, scaling: { type: 'boolean' }, ...CPU_FLAG },
        { min: 0, max: 0, names: '' },
      );
      const cpu = cpuFlagModel(values.cpu, io);
      // Through io.err (stderr), redrawn in place when stderr is a terminal.
      const bar = progressBar({ write: (s: string) => io.err(s), isTTY: process.stderr.isTTY === true });
      const report = await runBench({ quick: values.quick === true, scaling: values.scaling === true, progress: bar, ...(cpu !== undefined ? { cpu } : {}) });
      bar.done();
      if (values.json) {
        io.out(`${JSON.stringify(report.json)}\n`);
        for (const u of report.unmeasured) io.err(`not measured: ${u.key}: ${u.why}\n`);
      } else {
        io.out(formatReport(report));
      }
      return report.rows.some((r) => r.section === 'errors') ? EXIT_NEGATIVE : EXIT_OK;
    });
  },
};
