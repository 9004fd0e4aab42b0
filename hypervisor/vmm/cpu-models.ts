/**
 * Finding the CPU model a machine boots with: one of the named models (shared/x86/
 * cpu-models-builtin.ts), or a folder in the reference format (a real boot's dump, made with
 * ../shared/tools/kernel-reference/): `reference.json` and `boot_cpu_data.bin`.
 *
 * From the folder: the identity, capability words and address bits from `boot_cpu_data.bin`
 * (struct cpuinfo_x86 as the booted kernel left it); present CPUs from `smp`; possible CPUs
 * from `possible` (or its synonym `maxcpus`, QEMU's `-smp maxcpus=`) when given, else `smp`;
 * the command line from `cmdline`. Any other field of reference.json is ignored here.
 *
 * TRUST: the folder is the operator's input: every read is bounded and checked before use.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { type Result, err, ok } from '../../shared/result.ts';
import { readHostFile } from '../../shared/host-file.ts';
import { type CpuModel, decodeCpuinfo, validateCpuModel } from '../../shared/x86/cpu-model.ts';
import { BUILTIN_CPU_MODELS, DEFAULT_CPU_MODEL } from '../../shared/x86/cpu-models-builtin.ts';

/** reference.json files larger than this are refused (the shipped ones are about 20 KiB). */
export const MAX_REFERENCE_JSON_BYTES = 4 << 20;
/** boot_cpu_data.bin files larger than this are refused (the references dump 1 KiB). */
export const MAX_BOOT_CPU_DATA_BYTES = 64 << 10;

/** What a user may name: the named models, a folder path, or a model already built. */
export type CpuModelSpec = string | CpuModel;

/** The names users may give, for messages and `--help`. */
export function cpuModelNames(): readonly string[] {
  return [...BUILTIN_CPU_MODELS.keys()];
}

function cpuCount(v: unknown, field: string, where: string): Result<number | undefined, string> {
  if (v === undefined) return ok(undefined);
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) return err(`${where}: "${field}" must be a positive integer, got ${JSON.stringify(v)}`);
  return ok(v);
}

/**
 * The model in reference folder `dir` (named by `dir` as given); the error names the file and
 * the field that is wrong.
 */
export function loadCpuModelFolder(dir: string): Result<CpuModel, string> {
  let st;
  try {
    st = statSync(dir);
  } catch {
    return err(`CPU model ${dir}: no such model (named models: ${cpuModelNames().join(', ')}) and no such folder`);
  }
  if (!st.isDirectory()) return err(`CPU model ${dir}: not a folder (a model folder holds reference.json and boot_cpu_data.bin)`);
  const jsonPath = join(dir, 'reference.json');
  const raw = readHostFile(jsonPath, { maxBytes: MAX_REFERENCE_JSON_BYTES });
  if (!raw.ok) return err(`CPU model ${dir}: ${raw.error}`);
  let ref: Record<string, unknown>;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(raw.value).toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return err(`${jsonPath}: not a JSON object`);
    ref = parsed as Record<string, unknown>;
  } catch (e) {
    return err(`${jsonPath}: not JSON (${(e as Error).message})`);
  }
  const smp = cpuCount(ref['smp'], 'smp', jsonPath);
  if (!smp.ok) return smp;
  if (smp.value === undefined) return err(`${jsonPath}: "smp" (the number of vCPUs the reference booted with) is missing`);
  if (ref['possible'] !== undefined && ref['maxcpus'] !== undefined && ref['possible'] !== ref['maxcpus'])
    return err(`${jsonPath}: "possible" and "maxcpus" differ; give one`);
  const possible = cpuCount(ref['possible'] ?? ref['maxcpus'], ref['possible'] !== undefined ? 'possible' : 'maxcpus', jsonPath);
  if (!possible.ok) return possible;
  const cmdline = ref['cmdline'];
  if (typeof cmdline !== 'string') return err(`${jsonPath}: "cmdline" (the kernel command line as booted) must be a string`);
  const bin = readHostFile(join(dir, 'boot_cpu_data.bin'), { maxBytes: MAX_BOOT_CPU_DATA_BYTES });
  if (!bin.ok) return err(`CPU model ${dir}: ${bin.error}`);
  const id = decodeCpuinfo(bin.value);
  if (!id.ok) return err(`${join(dir, 'boot_cpu_data.bin')}: ${id.error}`);
  const model = validateCpuModel({ name: dir, ...id.value, presentCpus: smp.value, possibleCpus: possible.value ?? smp.value, cmdline });
  return model.ok ? model : err(`${dir}: ${model.error}`);
}

/**
 * The model `spec` names: a named model (`skylake-smp2`), a reference folder (any other
 * string: a path, relative to the working directory unless absolute), or a model object
 * (checked); absent: the default model.
 */
export function resolveCpuModel(spec: CpuModelSpec | undefined): Result<CpuModel, string> {
  if (spec === undefined) return ok(DEFAULT_CPU_MODEL);
  if (typeof spec !== 'string') return validateCpuModel(spec);
  if (spec === '') return err(`CPU model: an empty name (named models: ${cpuModelNames().join(', ')}, or a reference folder)`);
  const named = BUILTIN_CPU_MODELS.get(spec);
  if (named) return ok(named);
  return loadCpuModelFolder(spec);
}
