/**
 * `heki demo` (what `npm start` runs): the default scenario on the real Debian 6.1 kernel,
 * or, when the kernel fixtures are not there, the core-level demo, saying why.
 */
import { fixturePaths, fixturesAvailable } from '../../shared/kernel-image/fixture-paths.ts';
import type { CliCommand, CliIo } from '../command.ts';
import { parseFlags, UsageError, withUsage } from '../args.ts';
import { CPU_FLAG, CPU_FLAG_USAGE, cpuFlagModel } from '../cpu-flag.ts';
import { HYPERVISOR_FLAG, HYPERVISOR_FLAG_USAGE, hypervisorFlag } from '../hypervisor-flag.ts';
import { runCoreDemo } from '../demo/core-demo.ts';

const USAGE = `usage: heki demo [--json] [--core] [--cpu <name|folder>] [--hypervisor kvm|hyperv]

Boots the real Debian 6.1 kernel under Heki with the isolated verifier VM, loads signed
Debian modules, enables ftrace on every site and disables it again, then plays the attacker
who owns the guest kernel (scenarios/demo.yaml). Needs the kernel fixtures
(../shared/fixtures/linux-6.1.0-56-amd64, or HEKI_FIXTURES); without them it says so and runs
the core-level demo on the emulated KVM core alone.
Exit 0 when every step behaved as expected, 1 otherwise, 2 on bad usage.

  --json   print one JSON object (the heki run --json result, plus a summary)
  --core   run the core-level demo even when the fixtures are there
${CPU_FLAG_USAGE}${HYPERVISOR_FLAG_USAGE}`;

/** The `heki demo` command. */
export const demoCommand: CliCommand = {
  name: 'demo',
  usage: USAGE,
  run(argv: string[], io: CliIo): Promise<number> {
    return withUsage(USAGE, io, argv, async () => {
      const { values } = parseFlags(
        argv,
        { json: { type: 'boolean', default: false }, core: { type: 'boolean', default: false }, ...CPU_FLAG, ...HYPERVISOR_FLAG },
        { min: 0, max: 0, names: '' },
      );
      const cpu = cpuFlagModel(values.cpu, io);
      if (values.core && cpu !== undefined) throw new UsageError('--core runs no guest kernel; --cpu does not apply');
      const hypervisor = hypervisorFlag(values.hypervisor);
      if (values.core && hypervisor !== undefined) throw new UsageError('--core runs the KVM core demo; --hypervisor does not apply');
      if (values.core) return runCoreDemo(io, values.json);
      if (!fixturesAvailable()) {
        io.err(
          `heki demo: the real-kernel demo needs the Debian 6.1 fixtures, not found at ${fixturePaths().dir} (set HEKI_FIXTURES); running the core-level demo instead.\n\n`,
        );
        return runCoreDemo(io, values.json);
      }
      const { runRealDemo } = await import('../demo/real-demo.ts');
      return runRealDemo(io, values.json, cpu, hypervisor);
    });
  },
};
