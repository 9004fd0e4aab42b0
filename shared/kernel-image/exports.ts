/**
 * The symbols vmlinux exports to modules. `EXPORT_SYMBOL(name)` emits a `struct
 * kernel_symbol` called `__ksymtab_<name>` (include/linux/export.h), so System.map's
 * `__ksymtab_*` entries list the exported names; the address a module links against is
 * that of `<name>` itself.
 */

import { err, ok, type Result } from '../result.ts';
import { kernelImageError, type KernelImageError } from './kernel-image-errors.ts';
import type { SystemMap } from './system-map.ts';

const PREFIX = '__ksymtab_';

/** Exported name -> address, in System.map order. A name with no address is an error. */
export function readExports(map: SystemMap): Result<Map<string, bigint>, KernelImageError> {
  const out = new Map<string, bigint>();
  for (const s of map.symbols) {
    if (!s.name.startsWith(PREFIX)) continue;
    const name = s.name.slice(PREFIX.length);
    if (name === '' || out.has(name)) continue;
    const address = map.address(name);
    if (address === undefined) {
      return err(kernelImageError('exports', `System.map line ${s.line}: ${s.name} exports "${name}", which has no entry of its own`));
    }
    out.set(name, address);
  }
  return ok(out);
}
