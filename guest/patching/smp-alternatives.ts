/**
 * The guest's SMP alternatives (arch/x86/kernel/alternative.c): which `.smp_locks` lists the
 * kernel remembers (`smp_alt_modules`: the core kernel's and each loaded module's, within
 * their text) and whether boot patched the lock prefixes to UP (`uniproc_patched`, set when
 * alternative_instructions() found one CPU present). When the VMM brings a second CPU online,
 * {@link SmpAlternatives.enableSmp} does what alternatives_enable_smp() does: every listed
 * prefix whose byte is the DS override `3e` becomes `lock` (`f0`), here in one authenticated
 * text-patch batch of kind `smp-lock`, which the verifier allows only at `.smp_locks` sites
 * and only after the VMM raised the CPU count.
 */
import { DS_PREFIX, LOCK_PREFIX } from '../../shared/x86/smp-locks.ts';
import type { PatchRequest } from '../../shared/heki-descriptors.ts';
import type { PokeResult } from './text-poker.ts';

/** The name alternative_instructions() registers the core kernel's list under. */
export const CORE_KERNEL = 'core kernel';

/** What enableSmp did. */
export type EnableSmpResult =
  | { readonly ok: true; readonly restored: number; readonly batches: number; readonly uniprocPatched: boolean }
  | { readonly ok: false; readonly reason: string };

/** The SMP alternatives of one kernel. */
export class SmpAlternatives {
  #uniproc = false;
  readonly #lists = new Map<string, readonly bigint[]>();

  constructor(
    private readonly poke: (patches: readonly PatchRequest[]) => Promise<PokeResult>,
    private readonly readByte: (va: bigint) => number | undefined,
  ) {}

  /** Whether the lock prefixes are patched to UP now (`uniproc_patched`). */
  get uniprocPatched(): boolean {
    return this.#uniproc;
  }

  /**
   * Boot patched the lock prefixes to UP (alternatives_smp_module_add(NULL, "core kernel",
   * ...) with `uniproc_patched` set): from now on a module's list is remembered too. Called
   * by the boot touch-ups, and by a restored kernel whose boot had done so.
   */
  markUniprocPatched(): void {
    this.#uniproc = true;
  }

  /** Remembers `owner`'s lock prefixes (the core kernel at boot, a module at load). */
  add(owner: string, sites: readonly bigint[]): void {
    if (sites.length > 0) this.#lists.set(owner, sites);
  }

  /** Forgets a module's list (alternatives_smp_module_del at unload). */
  remove(owner: string): void {
    this.#lists.delete(owner);
  }

  /**
   * alternatives_enable_smp(): when boot patched to UP, every remembered prefix that holds
   * `3e` becomes `f0` in one batch; then the kernel is SMP for good. Nothing to do otherwise
   * (the prefixes were never stripped). A refused batch leaves `uniproc_patched` set.
   */
  async enableSmp(): Promise<EnableSmpResult> {
    if (!this.#uniproc) return { ok: true, restored: 0, batches: 0, uniprocPatched: false };
    const patches: PatchRequest[] = [];
    for (const sites of this.#lists.values()) {
      for (const site of sites) {
        if (this.readByte(site) !== DS_PREFIX) continue;
        patches.push({ kind: 'smp-lock', site, oldBytes: Uint8Array.of(DS_PREFIX), newBytes: Uint8Array.of(LOCK_PREFIX) });
      }
    }
    let batches = 0;
    if (patches.length > 0) {
      const r = await this.poke(patches);
      if (!r.ok) return { ok: false, reason: r.reason };
      batches = r.batches;
    }
    this.#uniproc = false;
    return { ok: true, restored: patches.length, batches, uniprocPatched: true };
  }
}
