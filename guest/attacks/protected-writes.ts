/**
 * Writes to memory that must never change after boot: kernel .text, .rodata, ro_after_init,
 * and a loaded module's text and rodata. The attacker writes through the kernel's own
 * mapping (CR0.WP is pinned, so the read-only PTE holds: #PF write-protect), then sets RW in
 * that very page-table entry, as it owns the tables, and writes again: now only the EPT stands
 * in the way. Expected: an `ept-violation` exit (kernel write) and #PF with cause
 * `ept-violation`; the byte unchanged.
 */
import type { Attack } from './attack.ts';
import { overwriteProtectedByte } from './exploits.ts';
import { loadGenuine, moduleGroup } from './module-hooks.ts';
import { symbol } from './primitives.ts';

const EXPECTED =
  'with RW set in the page-table entry (the read-only mapping alone gives #PF write-protect), an ept-violation exit (kernel write) and #PF (ept-violation); byte unchanged';

/** The kernel addresses these attacks write to. */
export const WRITE_TARGETS = {
  /** A byte inside commit_creds. */
  text: { symbol: 'commit_creds', offset: 0x10n },
  /** The first entry of the system call table (.rodata). */
  rodata: { symbol: 'sys_call_table', offset: 0n },
  /** The LSM hook lists (ro_after_init). */
  roAfterInit: { symbol: 'security_hook_heads', offset: 0n },
} as const;

/** Offset into a module group the module attacks write to. */
export const MODULE_WRITE_OFFSET = 0x10n;

/** The protected-write attacks. */
export const PROTECTED_WRITE_ATTACKS: readonly Attack[] = [
  {
    name: 'write-kernel-text',
    title: 'patch a byte of kernel .text (commit_creds) by writing to it',
    expectedStop: EXPECTED,
    run: ({ kernel }) =>
      Promise.resolve(
        overwriteProtectedByte(kernel, symbol(kernel, WRITE_TARGETS.text.symbol) + WRITE_TARGETS.text.offset, 'kernel .text (commit_creds+0x10)'),
      ),
  },
  {
    name: 'write-kernel-rodata',
    title: 'overwrite a .rodata constant (the first sys_call_table entry)',
    expectedStop: EXPECTED,
    run: ({ kernel }) => Promise.resolve(overwriteProtectedByte(kernel, symbol(kernel, WRITE_TARGETS.rodata.symbol), 'kernel .rodata (sys_call_table)')),
  },
  {
    name: 'write-ro-after-init',
    title: 'overwrite ro_after_init data (security_hook_heads, the LSM hook lists)',
    expectedStop: EXPECTED,
    run: ({ kernel }) =>
      Promise.resolve(overwriteProtectedByte(kernel, symbol(kernel, WRITE_TARGETS.roAfterInit.symbol), 'ro_after_init (security_hook_heads)')),
  },
  {
    name: 'write-module-text',
    title: "patch a byte of a loaded module's text (crc7)",
    expectedStop: EXPECTED,
    async run(ctx) {
      const m = await loadGenuine(ctx, 'crc7');
      return overwriteProtectedByte(ctx.kernel, moduleGroup(m, 'text').start + MODULE_WRITE_OFFSET, 'crc7 text');
    },
  },
  {
    name: 'write-module-rodata',
    title: "overwrite a loaded module's rodata (crc7's read-only group)",
    expectedStop: EXPECTED,
    async run(ctx) {
      const m = await loadGenuine(ctx, 'crc7');
      return overwriteProtectedByte(ctx.kernel, moduleGroup(m, 'ro').start + MODULE_WRITE_OFFSET, 'crc7 rodata');
    },
  },
];
