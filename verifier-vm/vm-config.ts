/**
 * The VMM's configuration of the VMs a verifier serves (WorkerInit `vms`), checked in the
 * worker before a field is used: the CPU model each VM runs on and the CPUs online. TRUST:
 * it comes from the VMM (trusted), never from the guest; its shape is still checked, since a
 * malformed model would make every prediction from it wrong.
 */
import { type Result, err, ok } from '../shared/result.ts';
import { type CpuModel, validateCpuModel } from '../shared/x86/cpu-model.ts';
import { DEFAULT_CPU_MODEL } from '../shared/x86/cpu-models-builtin.ts';

/** One VM's checked configuration. */
export interface CheckedVmConfig {
  readonly cpuModel: CpuModel;
  onlineCpus: number;
}

/** Whether `online` CPUs can be online for `model`; the error names the bound. */
export function checkOnlineCpus(model: CpuModel, online: unknown): string | undefined {
  if (typeof online !== 'number' || !Number.isInteger(online) || online < model.presentCpus || online > model.possibleCpus) {
    return `${String(online)} CPUs online is not an integer from the model's ${model.presentCpus} present to its ${model.possibleCpus} possible CPUs`;
  }
  return undefined;
}

/** Checks WorkerInit `vms`; the error names the VM and the field. */
export function checkVmConfigs(v: unknown): Result<Map<string, CheckedVmConfig>, string> {
  const out = new Map<string, CheckedVmConfig>();
  if (v === undefined) return ok(out);
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return err('vms must map VM names to their configuration');
  for (const [vm, c] of Object.entries(v as Record<string, unknown>)) {
    const x = c as Record<string, unknown> | null;
    if (typeof x !== 'object' || x === null) return err(`vms.${vm} is not an object`);
    const model = validateCpuModel(x['cpuModel']);
    if (!model.ok) return err(`vms.${vm}.cpuModel: ${model.error}`);
    const online = x['onlineCpus'] ?? model.value.presentCpus;
    const bad = checkOnlineCpus(model.value, online);
    if (bad) return err(`vms.${vm}.onlineCpus: ${bad}`);
    out.set(vm, { cpuModel: Object.freeze({ ...model.value, capabilities: Object.freeze([...model.value.capabilities]) }), onlineCpus: online as number });
  }
  return ok(out);
}

/** The configuration of a VM the VMM did not describe: the default model, its present CPUs. */
export function defaultVmConfig(): CheckedVmConfig {
  return { cpuModel: DEFAULT_CPU_MODEL, onlineCpus: DEFAULT_CPU_MODEL.presentCpus };
}
