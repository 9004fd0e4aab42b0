/**
 * The security regression catalogue: every named attack, in the order `heki attacks` runs
 * and lists them. Names are stable (users' scripts and the test files name them); add new
 * attacks, never rename one.
 */
import type { Attack } from './attack.ts';
import { BOOT_TOUCHUP_ATTACKS } from './boot-touchups.ts';
import { CODE_IMAGE_ATTACKS } from './code-images.ts';
import { CR_PIN_ATTACKS } from './cr-pins.ts';
import { DATA_EXECUTION_ATTACKS } from './data-execution.ts';
import { HOST_SIDE_ATTACKS } from './host-side.ts';
import { HYPERCALL_ATTACKS } from './hypercall-abuse.ts';
import { MODULE_ATTACKS } from './module-loading.ts';
import { MODULE_INIT_ATTACKS } from './module-init.ts';
import { PAGE_TABLE_ATTACKS } from './page-tables.ts';
import { PLATFORM_ATTACKS } from './platform-registers.ts';
import { PROTECTED_WRITE_ATTACKS } from './protected-writes.ts';
import { SET_MEMORY_ATTACKS } from './set-memory.ts';
import { TEXT_PATCH_ATTACKS } from './text-patching.ts';
import { VERIFIER_ATTACKS } from './verifier-attacks.ts';

/** Every attack, by class. */
export const ATTACKS: readonly Attack[] = [
  ...CR_PIN_ATTACKS,
  ...PLATFORM_ATTACKS,
  ...PROTECTED_WRITE_ATTACKS,
  ...DATA_EXECUTION_ATTACKS,
  ...SET_MEMORY_ATTACKS,
  ...MODULE_ATTACKS,
  ...MODULE_INIT_ATTACKS,
  ...TEXT_PATCH_ATTACKS,
  ...BOOT_TOUCHUP_ATTACKS,
  ...CODE_IMAGE_ATTACKS,
  ...PAGE_TABLE_ATTACKS,
  ...HYPERCALL_ATTACKS,
  ...VERIFIER_ATTACKS,
  ...HOST_SIDE_ATTACKS,
];

const KEBAB = /^[a-z0-9]+(-[a-z0-9]+)*$/;

/** Checks the catalogue's own invariants: kebab-case, unique names. Throws on a broken catalogue (a code bug). */
export function checkCatalogue(attacks: readonly Attack[] = ATTACKS): void {
  const seen = new Set<string>();
  for (const a of attacks) {
    if (!KEBAB.test(a.name)) throw new Error(`attack name '${a.name}' is not kebab-case`);
    if (seen.has(a.name)) throw new Error(`attack name '${a.name}' is used twice`);
    seen.add(a.name);
  }
}

/** The attack called `name`, or undefined. */
export function attackByName(name: string): Attack | undefined {
  return ATTACKS.find((a) => a.name === name);
}
