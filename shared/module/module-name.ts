/**
 * Module names as kmod compares them. KBUILD_MODNAME spells a module's name with `_` only
 * (scripts/Makefile.lib: `modname-to-var = $(subst -,_,$1)`), while file names, `depends=`
 * entries (modpost writes the file's base name, e.g. Debian dm-crypt's `depends=dm-mod`) and
 * what users type (`modprobe dm-crypt`, `rmmod dm-mod`) may use `-`. libkmod's
 * `modname_normalize()` turns every `-` into `_` before any comparison; every name the
 * loader, the scenario steps and the verifier compare goes through {@link normalizeModuleName}.
 *
 * The kernel itself compares `struct module` names exactly (find_module); only the module's
 * own `.modinfo` `name=` reaches it, so that name is kept as it is.
 */

/** A module name as libkmod's modname_normalize() gives it: every `-` becomes `_`. */
export function normalizeModuleName(name: string): string {
  return name.replaceAll('-', '_');
}
