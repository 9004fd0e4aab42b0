/**
 * The host side of a `load-module` step: what modprobe does in userspace before
 * init_module. It reads the named `.ko` file (bounded: shared/host-file.ts), takes the
 * module's name from its `.modinfo`, and hands the guest's loader a {@link ModuleSource}
 * that finds the dependencies as `<name>.ko` in the same folder, in either spelling
 * (`-` or `_`, as kmod matches them).
 */
import { dirname, join } from 'node:path';
import { existsSync, readFileSync } from 'node:fs';
import { readHostFile } from '../shared/host-file.ts';
import { type Result, err, ok } from '../shared/result.ts';
import { parseModuleFile, readModinfo } from '../shared/module/index.ts';
import type { ModuleSource } from '../guest/modules/module-loader.ts';

/** A module file ready for modprobe: its name and where it and its dependencies come from. */
export interface ModuleFiles {
  readonly name: string;
  readonly source: ModuleSource;
}

/** Reads the module at `path`, or says why it cannot be loaded (a message naming the file). */
export function moduleFiles(path: string): Result<ModuleFiles, string> {
  const read = readHostFile(path);
  if (!read.ok) return err(`cannot read module ${read.error}`);
  const file = read.value;
  const elf = parseModuleFile(file);
  if (!elf.ok) return err(`${path}: ${elf.error.message}`);
  const info = readModinfo(elf.value);
  if (!info.ok || !info.value.name) return err(`${path}: ${info.ok ? '.modinfo has no name' : info.error.message}`);
  const name = info.value.name;
  const dir = dirname(path);
  return ok({
    name,
    source: {
      where: dir,
      read: (n) => {
        if (n === name) return file;
        for (const candidate of [n, n.replaceAll('_', '-'), n.replaceAll('-', '_')]) {
          const p = join(dir, `${candidate}.ko`);
          if (existsSync(p)) return new Uint8Array(readFileSync(p));
        }
        return undefined;
      },
    },
  });
}
