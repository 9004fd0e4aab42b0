/**
 * The real-kernel demo `npm start` runs: scenarios/demo.yaml on the Debian 6.1 image, with a
 * line per step as it completes and a summary of what the verifier, the core and the VMM did.
 */
import { fileURLToPath } from 'node:url';
import { verifyAuditChain } from '../../hypervisor/audit/audit-log.ts';
import { loadScenario, runScenario } from '../../scenario/index.ts';
import type { MachineApi } from '../../machine/machine-api.ts';
import { createMachineDetailed } from '../../machine/machine.ts';
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import type { HypervisorKind } from '../../shared/hypervisor-kind.ts';
import { machineConfigOf } from '../commands/run.ts';
import { EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, type CliIo } from '../command.ts';
import { Progress } from '../progress.ts';
import { stepGap } from './hypervisor-steps.ts';

/** The default scenario. */
export const DEMO_SCENARIO = fileURLToPath(new URL('../../scenarios/demo.yaml', import.meta.url));

interface Summary {
  verdicts: number;
  allowed: number;
  denied: number;
  chain: string;
  exits: number;
  failClosed: number;
}

/** Runs the demo scenario; resolves to the exit code. */
export async function runRealDemo(io: CliIo, json: boolean, cpu?: CpuModel, hypervisor?: HypervisorKind): Promise<number> {
  const scenario = loadScenario(DEMO_SCENARIO, 'scenarios/demo.yaml');
  if (!scenario.ok) {
    io.err(`heki demo: ${scenario.error}\n`);
    return EXIT_USAGE;
  }
  const t0 = performance.now();
  if (!json) {
    io.out('heki-sim demo: the real Debian 6.1 kernel (linux-6.1.0-56-amd64) under Heki, with an isolated verifier VM\n\n');
    io.out('  loading the kernel: decompressing vmlinuz, reading System.map, building and signing its manifest, starting the verifier VM...\n');
  }
  const progress = new Progress(io, 'heki demo');
  const created = await createMachineDetailed({
    ...machineConfigOf(scenario.value),
    ...(cpu !== undefined ? { cpu } : {}),
    ...(hypervisor !== undefined ? { hypervisor } : {}),
    ...(json ? {} : { log: (l: string) => io.out(`      ${l}\n`) }),
  });
  if (!created.ok) {
    io.err(`heki demo: ${created.error.message}\n`);
    return created.error.kind === 'input' ? EXIT_USAGE : EXIT_NEGATIVE;
  }
  const m = created.value;
  let summary: Summary | undefined;
  // Collect the machine's own account just before the runner disposes it.
  const machine: MachineApi = new Proxy(m, {
    get(target, prop, receiver) {
      if (prop === 'dispose') {
        return async () => {
          const records = target.audit.records();
          const chain = verifyAuditChain(records.map((r) => JSON.stringify(r)).join('\n'));
          summary = {
            verdicts: records.length,
            allowed: records.filter((r) => r['ok'] === true).length,
            denied: records.filter((r) => r['ok'] === false).length,
            chain: chain.ok ? 'intact' : `BROKEN at line ${chain.line}: ${chain.reason}`,
            exits: target.vmm.log.events().length,
            failClosed: target.link.stats.failClosed,
          };
          await target.dispose();
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
  let last = performance.now();
  const total = scenario.value.steps.length;
  const result = await runScenario(
    scenario.value,
    machine,
    (r) => {
      const now = performance.now();
      progress.done();
      if (!json) {
        const gap = r.ok ? undefined : stepGap(hypervisor, r.op, r.expected);
        const mark = r.ok ? 'ok ' : gap ? 'n/a' : 'FAIL';
        io.out(
          `  ${mark} ${String(r.index).padStart(2)} ${r.op.padEnd(13)} ${r.outcome.padEnd(8)} ${`${Math.round(now - last)} ms`.padStart(8)}  ${r.reason}${gap ? ` (not applicable on hyperv: ${gap})` : ''}\n`,
        );
      }
      last = now;
    },
    { onStepStart: (step) => progress.status(`step ${step.index}/${total} (${step.op}) running...`) },
  );
  progress.done();
  const passed = result.steps.filter((s) => s.ok).length;
  const notApplicable = result.steps.flatMap((s) => {
    const reason = s.ok ? undefined : stepGap(hypervisor, s.op, s.expected);
    return reason ? [{ index: s.index, op: s.op, reason }] : [];
  });
  if (json) {
    io.out(
      `${JSON.stringify({ ...result, summary: summary ?? null, ...(hypervisor ? { hypervisor, notApplicable } : {}), ms: Math.round(performance.now() - t0) })}\n`,
    );
  } else {
    const na = notApplicable.length
      ? ` (${notApplicable.length} not applicable on hypervisor ${hypervisor}: steps ${notApplicable.map((s) => s.index).join(', ')})`
      : '';
    io.out(`\n${passed}/${result.steps.length - notApplicable.length} steps behaved as expected in ${((performance.now() - t0) / 1000).toFixed(1)} s${na}.\n`);
    if (summary) {
      io.out(
        `The verifier VM decided ${summary.verdicts} authenticated changes (${summary.allowed} allowed, ${summary.denied} denied; ${summary.failClosed} failed closed);\n`,
      );
      io.out(`the audit log's hash chain is ${summary.chain}; the VMM handled ${summary.exits} VM exits.\n`);
    }
    io.out('Run your own: heki run <scenario.yaml> (docs/scenarios.md); the attack catalogue: heki attacks.\n');
  }
  const failed = result.steps.filter((s) => !s.ok).length - notApplicable.length;
  return result.passed || (notApplicable.length > 0 && failed === 0 && result.steps.length === total) ? EXIT_OK : EXIT_NEGATIVE;
}
