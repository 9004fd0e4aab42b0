/**
 * `--cpu <name|folder>` of every command that boots a machine: the CPU model the VM runs on
 * (hypervisor/vmm/cpu-models.ts). Checked before any machine starts, so a bad model is exit 2
 * naming the problem.
 */
import { resolve } from 'node:path';
import type { CliIo } from './command.ts';
import { UsageError } from './args.ts';
import { resolveCpuModel } from '../hypervisor/vmm/cpu-models.ts';
import { BUILTIN_CPU_MODELS, DEFAULT_CPU_MODEL_NAME } from '../shared/x86/cpu-models-builtin.ts';
import type { CpuModel } from '../shared/x86/cpu-model.ts';

/** The flag's parseFlags spec. */
export const CPU_FLAG = { cpu: { type: 'string' } } as const;

/** The flag's line in `--help`. */
export const CPU_FLAG_USAGE = `  --cpu <name|folder>     the CPU model: ${[...BUILTIN_CPU_MODELS.keys()].join(', ')} (default ${DEFAULT_CPU_MODEL_NAME}),
                          or a reference folder (reference.json, boot_cpu_data.bin)
`;

/**
 * The model `--cpu` names (a folder relative to the working directory), or undefined when
 * the flag is absent. Throws UsageError (exit 2) naming the problem.
 */
export function cpuFlagModel(value: string | undefined, io: Pick<CliIo, 'cwd'>): CpuModel | undefined {
  if (value === undefined) return undefined;
  const spec = BUILTIN_CPU_MODELS.has(value) ? value : resolve(io.cwd, value);
  const m = resolveCpuModel(spec);
  if (!m.ok) throw new UsageError(`--cpu: ${m.error}`);
  return m.value;
}
