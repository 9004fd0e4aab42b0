/**
 * Reading a scenario file for a command (`heki run`, `heki snapshot`): parse it and check the
 * host files it names (key files, kernel files), printing the problem and giving exit 2 on
 * bad input before any machine starts.
 */
import { resolve } from 'node:path';
import { loadScenario } from '../scenario/load.ts';
import type { Scenario } from '../scenario/scenario.ts';
import type { CliIo } from './command.ts';
import { accessSync, constants } from 'node:fs';
import { err, type Result } from '../shared/result.ts';
import { checkHostFile, readHostFile, readHostText, systemReason } from '../shared/host-file.ts';
import { parseBzImageHeader } from '../shared/kernel-image/bzimage.ts';
import { parseSystemMap } from '../shared/kernel-image/system-map.ts';
import { keyringDataFromFiles } from '../tools/key-files.ts';
import { resolveCpuModel } from '../hypervisor/vmm/cpu-models.ts';
import { checkOutputFile } from '../shared/host-output.ts';
import { quoteForMessage } from '../shared/message-text.ts';

/** The scenario at `display` (relative to io.cwd), or undefined after printing why not. */
export function readScenarioInput(io: CliIo, display: string, command: string): Scenario | undefined {
  const loaded = loadScenario(resolve(io.cwd, display), quoteForMessage(display));
  if (!loaded.ok) {
    io.err(`${loaded.error}\n`);
    return undefined;
  }
  const files = checkScenarioFiles(loaded.value, display);
  if (!files.ok) {
    io.err(`heki ${command}: ${files.error}\n`);
    return undefined;
  }
  return loaded.value;
}

/** Whether `path` is a readable regular file of bounded size (shared/host-file.ts), or why not. */
export function readableFile(path: string): Result<void, string> {
  try {
    accessSync(path, constants.R_OK);
  } catch (e) {
    return err(`cannot read: ${systemReason(e)}`);
  }
  const r = checkHostFile(path, { display: '' });
  return r.ok ? { ok: true, value: undefined } : err(r.error);
}

/** What a kernel file a scenario names must be: a bzImage, a System.map, or a manifest (text). */
type KernelFileKind = 'vmlinuz' | 'system-map' | 'manifest';

/**
 * Whether the kernel file at `path` is well-formed enough to be worth starting a machine
 * for, or why not: readable and regular (shared/host-file.ts), a bzImage with its setup
 * header (Documentation/x86/boot.rst: "HdrS" at 0x202), a System.map that parses, a
 * manifest that is UTF-8 text. A cheap check: the kernel is decompressed and cross-checked
 * only when the machine loads it.
 */
function kernelFileProblem(kind: KernelFileKind, path: string): string | undefined {
  const r = readableFile(path);
  if (!r.ok) return r.error;
  if (kind === 'vmlinuz') {
    const bytes = readHostFile(path, { display: '' });
    if (!bytes.ok) return bytes.error;
    const h = parseBzImageHeader(bytes.value);
    return h.ok ? undefined : `not a bzImage: ${h.error.message}`;
  }
  const text = readHostText(path, { display: '' });
  if (!text.ok) return text.error;
  if (kind === 'system-map') {
    const map = parseSystemMap(text.value);
    return map.ok ? undefined : `not a System.map: ${map.error.message}`;
  }
  return text.value.trim() === '' ? 'the manifest is empty' : undefined;
}

/**
 * Checks the host files a scenario names before any machine starts, so that bad input is
 * exit 2 naming the file: every key file must load (tools/key-files.ts), a `cpu` must
 * name a model (hypervisor/vmm/cpu-models.ts), a save-memory step's `out` must be writable, and the
 * kernel files given explicitly (the boot kernel's, and each kexec step's image, manifest and
 * System.map) must be readable regular files of their format (kernelFileProblem).
 */
export function checkScenarioFiles(s: Scenario, display: string): Result<void, string> {
  const keys = keyringDataFromFiles(s.keys);
  if (!keys.ok) return err(`${display}: key file ${keys.error}`);
  if (s.cpu !== undefined) {
    const cpu = resolveCpuModel(s.cpu);
    if (!cpu.ok) return err(`${display}: 'cpu' ${cpu.error}`);
  }
  for (const step of s.steps) {
    if (step.op !== 'save-memory') continue;
    const w = checkOutputFile(step.out);
    if (!w.ok) return err(`${display}: step ${step.index} (save-memory): 'out' ${quoteForMessage(step.out)}: ${w.error}`);
  }
  for (const [key, path, kind] of [
    ['vmlinuz', s.vmlinuz, 'vmlinuz'],
    ['system-map', s.systemMap, 'system-map'],
  ] as const) {
    if (path === undefined) continue;
    const problem = kernelFileProblem(kind, path);
    if (problem !== undefined) return err(`${display}: '${key}' ${quoteForMessage(path)}: ${problem}`);
  }
  for (const step of s.steps) {
    if (step.op !== 'kexec') continue;
    for (const [key, path, kind] of [
      ['image', step.image, 'vmlinuz'],
      ['manifest', step.manifest, 'manifest'],
      ['system-map', step.systemMap, 'system-map'],
    ] as const) {
      if (path === undefined) continue;
      const problem = kernelFileProblem(kind, path);
      if (problem !== undefined) return err(`${display}: step ${step.index} (kexec): '${key}' ${quoteForMessage(path)}: ${problem}`);
    }
  }
  return { ok: true, value: undefined };
}
