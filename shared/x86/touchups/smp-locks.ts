/**
 * SMP lock prefixes: `alternatives_smp_unlock()` / `alternatives_smp_lock()` of Linux 6.1.192
 * arch/x86/kernel/alternative.c. When one CPU is present at boot (and the command line has
 * no `noreplace-smp`), every `.smp_locks` site inside the text whose byte is `lock` (0xf0)
 * becomes a DS segment override (0x3e): the uniprocessor form. `alternatives_enable_smp()`
 * turns them back when a second CPU comes online.
 */
import { cmdlineHas, type TouchupContext, type TouchupCpu } from './context.ts';
import type { TextSpace } from './text-space.ts';

/** The `lock` prefix. */
export const LOCK_PREFIX = 0xf0;
/** The DS segment override a UP kernel leaves in its place. */
export const DS_PREFIX = 0x3e;

/** Whether boot patches the lock prefixes to UP (`!noreplace_smp && num_present_cpus() == 1`). */
export function bootPatchesToUp(ctx: { readonly cpu: Pick<TouchupCpu, 'cmdline' | 'presentCpus'> }): boolean {
  return !cmdlineHas(ctx.cpu.cmdline, 'noreplace-smp') && ctx.cpu.presentCpus === 1;
}

/** Whether a kernel that patched to UP remembers the sites to undo it (`num_possible_cpus() > 1`). */
export function upPatchIsUndoable(ctx: TouchupContext): boolean {
  return ctx.cpu.possibleCpus > 1;
}

/**
 * Rewrites the prefix at every site in `[text, textEnd)` from `from` to `to`; returns the
 * addresses changed. `alternatives_smp_unlock` is (0xf0 -> 0x3e), `alternatives_smp_lock` the reverse.
 */
export function rewriteLockPrefixes(space: TextSpace, sites: readonly bigint[], text: bigint, textEnd: bigint, from: number, to: number): bigint[] {
  const changed: bigint[] = [];
  for (const addr of sites) {
    if (addr < text || addr >= textEnd) continue;
    const at = space.locate(addr);
    if (!at || at.region.bytes[at.offset] !== from) continue;
    at.region.bytes[at.offset] = to;
    changed.push(addr);
  }
  return changed;
}
