/**
 * A reference dump of a real boot (../shared/fixtures/linux-6.1.0-56-amd64/reference/README.md,
 * made with ../shared/tools/kernel-reference/): the CPU model, the kernel text as the booted
 * kernel held it, the modules in their load order with every section's address, and the
 * dumped module sections.
 *
 * TRUST: the folder is the operator's input; every file is read bounded and every field is
 * checked before use. An error names the file and the field.
 */
import { join } from 'node:path';
import { type Result, err, ok } from '../../shared/result.ts';
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import { xzDecompress } from '../../shared/kernel-image/xz.ts';
import { loadCpuModelFolder } from '../../hypervisor/vmm/cpu-models.ts';
import { readHostFile } from '../../shared/host-file.ts';

/** The text dump is at most this big (the fixture kernel's is 14 MiB). */
const MAX_TEXT_BYTES = 256 << 20;
/** A dumped module section is at most this big. */
const MAX_SECTION_BYTES = 64 << 20;
/** reference.json is at most this big. */
const MAX_JSON_BYTES = 4 << 20;

/** One dumped section of a module. */
export interface DumpedSection {
  readonly name: string;
  readonly addr: bigint;
  readonly bytes: Uint8Array;
}

/** A reference folder, read and checked. */
export interface ReferenceFolder {
  readonly dir: string;
  readonly model: CpuModel;
  /** Kernel text as the real kernel held it, at `textAddr`. */
  readonly textAddr: bigint;
  readonly text: Uint8Array;
  /** Module files in the order the real boot loaded them (`loaded`), e.g. `crc7.ko`. */
  readonly loaded: readonly string[];
  /** Module files that failed to load in the real boot (`failed`), e.g. `kvm-intel.ko`. */
  readonly failed: readonly string[];
  /** Every section's address of every loaded module, by module name. */
  readonly sections: ReadonlyMap<string, ReadonlyMap<string, bigint>>;
  /** The dumped sections, by module name. */
  readonly dumped: ReadonlyMap<string, readonly DumpedSection[]>;
}

const HEXADDR = /^0x[0-9a-f]{1,16}$/;

function addr(v: unknown, where: string): Result<bigint, string> {
  if (typeof v !== 'string' || !HEXADDR.test(v)) return err(`${where} must be a 0x-prefixed hex address, got ${JSON.stringify(v)?.slice(0, 40)}`);
  return ok(BigInt(v));
}

function record(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Reads and checks the folder. */
export function readReferenceFolder(dir: string): Result<ReferenceFolder, string> {
  const model = loadCpuModelFolder(dir);
  if (!model.ok) return model;
  const jsonPath = join(dir, 'reference.json');
  const raw = readHostFile(jsonPath, { maxBytes: MAX_JSON_BYTES });
  if (!raw.ok) return raw;
  let j: unknown;
  try {
    j = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(raw.value));
  } catch (e) {
    return err(`${jsonPath} is not UTF-8 JSON: ${(e as Error).message}`);
  }
  if (!record(j)) return err(`${jsonPath} must hold a JSON object`);
  const kt = j['kernel_text'];
  if (!record(kt) || typeof kt['file'] !== 'string' || !/^[\w.-]+$/.test(kt['file']))
    return err(`${jsonPath}: "kernel_text" must be {file, vaddr, size} with a plain file name`);
  const textAddr = addr(kt['vaddr'], `${jsonPath}: kernel_text.vaddr`);
  if (!textAddr.ok) return textAddr;
  const size = kt['size'];
  if (typeof size !== 'number' || !Number.isInteger(size) || size <= 0 || size > MAX_TEXT_BYTES)
    return err(`${jsonPath}: kernel_text.size must be a positive byte count`);
  // The shipped dumps are xz-compressed; the tool writes them raw (vmlinux.text.bin).
  const file = kt['file'];
  const textPath = join(dir, file);
  const textFile = readHostFile(textPath, { maxBytes: MAX_TEXT_BYTES });
  if (!textFile.ok) return textFile;
  let text = textFile.value;
  if (file.endsWith('.xz')) {
    const d = xzDecompress(text, { maxOutput: MAX_TEXT_BYTES });
    if (!d.ok) return err(`${textPath}: ${d.error.message}`);
    text = d.value;
  }
  if (text.length !== size) return err(`${textPath} holds ${text.length} bytes; reference.json says ${size}`);
  const loaded = j['loaded'];
  if (!Array.isArray(loaded) || !loaded.every((x) => typeof x === 'string' && /^[\w.-]+\.ko$/.test(x)))
    return err(`${jsonPath}: "loaded" must be a list of .ko file names`);
  const failed = j['failed'] ?? [];
  if (!Array.isArray(failed) || !failed.every((x) => typeof x === 'string' && /^[\w.-]+\.ko$/.test(x)))
    return err(`${jsonPath}: "failed" must be a list of .ko file names`);
  const sections = new Map<string, Map<string, bigint>>();
  const secs = j['sections'] ?? {};
  if (!record(secs)) return err(`${jsonPath}: "sections" must map module names to their sections`);
  for (const [mod, s] of Object.entries(secs)) {
    if (!record(s)) return err(`${jsonPath}: sections.${mod} must map section names to addresses`);
    const m = new Map<string, bigint>();
    for (const [name, a] of Object.entries(s)) {
      const v = addr(a, `${jsonPath}: sections.${mod}.${name}`);
      if (!v.ok) return v;
      m.set(name, v.value);
    }
    sections.set(mod, m);
  }
  const dumped = new Map<string, DumpedSection[]>();
  const dj = j['dumped'] ?? {};
  if (!record(dj)) return err(`${jsonPath}: "dumped" must map module names to their dumped sections`);
  for (const [mod, s] of Object.entries(dj)) {
    if (!record(s)) return err(`${jsonPath}: dumped.${mod} must map section names to {addr, size, file}`);
    const list: DumpedSection[] = [];
    for (const [name, d] of Object.entries(s)) {
      if (!record(d) || typeof d['file'] !== 'string' || !/^[\w./-]+$/.test(d['file']) || d['file'].includes('..'))
        return err(`${jsonPath}: dumped.${mod}.${name} must be {addr, size, file} with a file inside the folder`);
      const a = addr(d['addr'], `${jsonPath}: dumped.${mod}.${name}.addr`);
      if (!a.ok) return a;
      const bytes = readHostFile(join(dir, d['file']), { maxBytes: MAX_SECTION_BYTES });
      if (!bytes.ok) return bytes;
      if (bytes.value.length !== d['size']) return err(`${join(dir, d['file'])} holds ${bytes.value.length} bytes; reference.json says ${String(d['size'])}`);
      list.push({ name, addr: a.value, bytes: bytes.value });
    }
    dumped.set(mod, list);
  }
  return ok({ dir, model: model.value, textAddr: textAddr.value, text, loaded, failed, sections, dumped });
}
