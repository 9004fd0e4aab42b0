/**
 * Dynamic ftrace: turns `__mcount_loc` sites between the 5-byte NOP (traced off) and a
 * `call` to the ftrace trampoline (traced on), for all sites, a glob over function names, or
 * one function, through the authenticated text-poke path.
 *
 * Sites in .init.text are not patchable after boot: the init memory is freed at the end of
 * boot and ftrace drops those records (ftrace_free_init_mem), exactly as Linux does.
 */
import { NOP5, bytesEqual, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import type { PatchRequest } from '../../shared/heki-descriptors.ts';
import type { TextPoker, PokeResult } from './text-poker.ts';

/** One traceable function. */
export interface FtraceSite {
  readonly address: bigint;
  /** The function it belongs to (`name` or `name [module]`). */
  readonly func: string;
}

/** Turns a glob (`*`, `?`) into an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
}

/** The ftrace state of the kernel. */
export class Ftrace {
  readonly #sites = new Map<bigint, FtraceSite>();
  readonly #enabled = new Set<bigint>();

  constructor(
    private readonly poker: TextPoker,
    /** The trampoline traced calls go to (ftrace_caller). */
    readonly trampoline: bigint,
  ) {}

  /** Adds traceable sites (the kernel's at boot, a module's when it loads). */
  addSites(sites: Iterable<FtraceSite>): void {
    for (const s of sites) this.#sites.set(s.address, s);
  }

  /** Forgets sites (a module unloaded). */
  removeSites(addresses: Iterable<bigint>): void {
    for (const a of addresses) {
      this.#sites.delete(a);
      this.#enabled.delete(a);
    }
  }

  /** Number of sites, and of sites traced now. */
  get counts(): { sites: number; enabled: number } {
    return { sites: this.#sites.size, enabled: this.#enabled.size };
  }

  /** Sites that `target` selects: `all`, a glob over function names, or a function name. */
  select(target: string): FtraceSite[] {
    if (target === 'all') return [...this.#sites.values()];
    const re = globToRegExp(target);
    return [...this.#sites.values()].filter((s) => re.test(s.func) || re.test(s.func.replace(/ \[.*\]$/, '')));
  }

  /** Enables or disables tracing of the selected sites (those already in that state are skipped). */
  async set(op: 'enable' | 'disable', target: string): Promise<PokeResult & { selected: number }> {
    const sites = this.select(target);
    const patches: PatchRequest[] = [];
    for (const s of sites) {
      const on = this.#enabled.has(s.address);
      if ((op === 'enable') === on) continue;
      const call = encodeCall32(s.address, this.trampoline);
      patches.push({ kind: 'ftrace', site: s.address, oldBytes: on ? call : Uint8Array.from(NOP5), newBytes: on ? Uint8Array.from(NOP5) : call });
    }
    const r = await this.poker.poke(patches);
    if (r.ok) for (const p of patches) (op === 'enable' ? this.#enabled.add(p.site) : this.#enabled.delete(p.site));
    return { ...r, selected: sites.length };
  }

  /** The traced sites. */
  enabledSites(): bigint[] {
    return [...this.#enabled];
  }

  /** Marks sites traced (a restored kernel's record; the text already holds the calls). */
  restoreEnabled(addresses: Iterable<bigint>): void {
    for (const a of addresses) if (this.#sites.has(a)) this.#enabled.add(a);
  }

  /** Whether `address` is traced now (by the guest's own record). */
  isEnabled(address: bigint): boolean {
    return this.#enabled.has(address);
  }
}

export { bytesEqual };
