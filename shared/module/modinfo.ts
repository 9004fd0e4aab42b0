/**
 * The `.modinfo` section: NUL-separated `key=value` strings that `MODULE_INFO()` and friends
 * emit (include/linux/moduleparam.h `__MODULE_INFO`). The kernel reads it with
 * `get_next_modinfo()` (kernel/module/main.c): entries are separated by one or more NULs,
 * a key may repeat (`alias`, `parm`, `parmtype`), and `depends=` lists the modules that
 * must be loaded first, comma-separated and possibly empty.
 */

import { normalizeModuleName } from './module-name.ts';
import type { Elf64 } from '../elf/elf64.ts';
import { SHT_NOBITS } from '../elf/types.ts';
import { err, ok, type Result } from '../result.ts';
import { moduleError, type ModuleError } from './errors.ts';

/** A parsed `.modinfo`. */
export interface Modinfo {
  /** Every value of every key, in file order. */
  readonly entries: ReadonlyMap<string, readonly string[]>;
  /** `name=` (the module name the kernel uses, `KBUILD_MODNAME`). */
  readonly name: string | undefined;
  /**
   * `depends=`, split on commas, each name normalised as kmod does (`-` to `_`,
   * module-name.ts), so it compares equal to the `name=` of the module it means; empty when
   * the field is empty or absent.
   */
  readonly depends: readonly string[];
  /** `vermagic=`. */
  readonly vermagic: string | undefined;
  /** `license=`. */
  readonly license: string | undefined;
  /** `intree=Y`. */
  readonly intree: boolean;
  /** `retpoline=Y`. */
  readonly retpoline: boolean;
  /** The first value of `key`. */
  get(key: string): string | undefined;
}

/** Bound on entries, far above any real module (kvm has 30-odd). */
const MAX_ENTRIES = 65536;

/**
 * Parses the bytes of a `.modinfo` section. An entry without `=` is an error naming it (the
 * kernel would skip it, but no build tool writes one); a non-UTF-8 byte is kept as U+FFFD.
 */
export function parseModinfo(bytes: Uint8Array): Result<Modinfo, ModuleError> {
  const entries = new Map<string, string[]>();
  const decoder = new TextDecoder('utf-8', { fatal: false });
  let count = 0;
  let i = 0;
  while (i < bytes.length) {
    if (bytes[i] === 0) {
      i++;
      continue;
    }
    let end = bytes.indexOf(0, i);
    if (end < 0) end = bytes.length;
    const text = decoder.decode(bytes.subarray(i, end));
    i = end + 1;
    const eq = text.indexOf('=');
    if (eq <= 0) return err(moduleError('modinfo', `.modinfo entry ${JSON.stringify(text.slice(0, 64))} is not key=value`, { section: '.modinfo' }));
    if (++count > MAX_ENTRIES) return err(moduleError('limits', `.modinfo has more than ${MAX_ENTRIES} entries`, { section: '.modinfo' }));
    const key = text.slice(0, eq);
    const value = text.slice(eq + 1);
    const list = entries.get(key);
    if (list) list.push(value);
    else entries.set(key, [value]);
  }
  const get = (key: string): string | undefined => entries.get(key)?.[0];
  const dependsText = get('depends') ?? '';
  return ok({
    entries,
    name: get('name'),
    depends:
      dependsText === ''
        ? []
        : dependsText
            .split(',')
            .filter((d) => d !== '')
            .map(normalizeModuleName),
    vermagic: get('vermagic'),
    license: get('license'),
    intree: get('intree') === 'Y',
    retpoline: get('retpoline') === 'Y',
    get,
  });
}

/** Reads `.modinfo` of a module ELF; a module without one is an error. */
export function readModinfo(elf: Elf64): Result<Modinfo, ModuleError> {
  const sec = elf.sectionByName('.modinfo');
  if (sec === undefined || sec.type === SHT_NOBITS) return err(moduleError('modinfo', 'module has no .modinfo section', { section: '.modinfo' }));
  return parseModinfo(elf.sectionBytes(sec));
}
