/**
 * Dynamic ftrace: turns `__mcount_loc` sites between the 5-byte NOP (traced off) and a
 * `call` to the ftrace trampoline (traced on), for all sites, a glob over function names, or
 * one function, through the authenticated text-poke path.
 *
 * Sites in freed init memory are not patchable: the kernel's init memory is freed at the end
 * of boot and a module's init layout once its init returns, and ftrace drops those records
 * (ftrace_free_init_mem / ftrace_free_mem from do_init_module); the kernel (guest-kernel.ts)
 * never adds them here.
 *
 * A site also serves kprobes: 6.1 (CONFIG_KPROBES_ON_FTRACE) arms a kprobe placed on an
 * ftrace location through ftrace, not with an int3 (kernel/kprobes.c arm_kprobe_ftrace:
 * `ftrace_set_filter_ip(&kprobe_ftrace_ops, ...)`). kprobe_ftrace_ops saves registers
 * (FTRACE_OPS_FL_SAVE_REGS), so a site with a kprobe calls `ftrace_regs_caller`
 * (ftrace_get_addr_new: FTRACE_FL_REGS -> FTRACE_REGS_ADDR), and one traced only calls
 * `ftrace_caller`; either change is an ftrace patch, authenticated as one.
 */
import { NOP5, OPCODE_CALL_REL32, bytesEqual, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import { PatchBatchBuilder } from '../../shared/patch-batch-builder.ts';
import type { TextPoker, PokeResult } from './text-poker.ts';

/** One traceable function. */
export interface FtraceSite {
  readonly address: bigint;
  /** The function it belongs to (`name` or `name [module]`). */
  readonly func: string;
}

/** Turns a glob (`*`, `?`) into an anchored regular expression. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

/** One site and whether it is traced, as Linux keeps a `struct dyn_ftrace` per site. */
interface SiteRecord {
  readonly site: FtraceSite;
  /** Traced (by `set`). */
  enabled: boolean;
  /** A kprobe is armed here through ftrace (`armKprobe`). */
  kprobe: boolean;
}

/**
 * The traced sites as a set of addresses, kept in the site records themselves: switching
 * every site on or off reads and sets a flag per record, with no hash lookup per site.
 */
class EnabledSites implements Iterable<bigint> {
  constructor(private readonly records: Map<bigint, SiteRecord>) {}
  has(address: bigint): boolean {
    return this.records.get(address)?.enabled === true;
  }
  add(address: bigint): void {
    const r = this.records.get(address);
    if (r) r.enabled = true;
  }
  delete(address: bigint): void {
    const r = this.records.get(address);
    if (r) r.enabled = false;
  }
  get size(): number {
    let n = 0;
    for (const r of this.records.values()) if (r.enabled) n++;
    return n;
  }
  *[Symbol.iterator](): Iterator<bigint> {
    for (const [a, r] of this.records) if (r.enabled) yield a;
  }
}

/** The ftrace state of the kernel. */
export class Ftrace {
  readonly #sites = new Map<bigint, SiteRecord>();
  readonly #enabled = new EnabledSites(this.#sites);

  constructor(
    private readonly poker: TextPoker,
    /** The trampoline traced calls go to (ftrace_caller). */
    readonly trampoline: bigint,
    /** The trampoline of a site with a kprobe (ftrace_regs_caller; default: `trampoline`). */
    readonly regsTrampoline: bigint = trampoline,
  ) {}

  /** Adds traceable sites (the kernel's at boot, a module's when it loads). */
  addSites(sites: Iterable<FtraceSite>): void {
    for (const s of sites) {
      const old = this.#sites.get(s.address);
      this.#sites.set(s.address, { site: s, enabled: old?.enabled ?? false, kprobe: old?.kprobe ?? false });
    }
  }

  /** The ftrace site whose 5 bytes hold `address` (its start or inside it), or undefined. */
  siteCovering(address: bigint): bigint | undefined {
    for (let a = address; a > address - 5n; a--) if (this.#sites.has(a)) return a;
    return undefined;
  }

  /** The 5 bytes of site `rec` in the state `traced` / `kprobe`: the NOP, or a call to its trampoline. */
  #bytes(address: bigint, traced: boolean, kprobe: boolean): Uint8Array {
    if (!traced && !kprobe) return Uint8Array.from(NOP5);
    return encodeCall32(address, kprobe ? this.regsTrampoline : this.trampoline);
  }

  /**
   * Arms (or disarms) a kprobe at ftrace site `address` through ftrace: the site calls
   * `regsTrampoline` while a kprobe is armed, whether or not it is traced too.
   */
  async armKprobe(address: bigint, on: boolean): Promise<PokeResult> {
    const rec = this.#sites.get(address);
    if (!rec) return { ok: false, reason: `0x${address.toString(16)} is not an ftrace site`, denied: [], applied: 0 };
    if (rec.kprobe === on)
      return { ok: false, reason: `${on ? 'a' : 'no'} kprobe is armed through ftrace at 0x${address.toString(16)}`, denied: [], applied: 0 };
    const oldBytes = this.#bytes(address, rec.enabled, rec.kprobe);
    const newBytes = this.#bytes(address, rec.enabled, on);
    const r = await this.poker.poke([{ kind: 'ftrace', site: address, oldBytes, newBytes }]);
    if (r.ok) rec.kprobe = on;
    return r;
  }

  /** Sites with a kprobe armed through ftrace. */
  kprobeSites(): bigint[] {
    return [...this.#sites].filter(([, r]) => r.kprobe).map(([a]) => a);
  }

  /** Marks kprobes armed (a restored kernel's record; the text already holds the calls). */
  restoreKprobes(addresses: Iterable<bigint>): void {
    for (const a of addresses) {
      const r = this.#sites.get(a);
      if (r) r.kprobe = true;
    }
  }

  /** Whether a kprobe is armed through ftrace at `address`. */
  hasKprobe(address: bigint): boolean {
    return this.#sites.get(address)?.kprobe === true;
  }

  /** Forgets sites (a module unloaded). */
  removeSites(addresses: Iterable<bigint>): void {
    for (const a of addresses) this.#sites.delete(a);
  }

  /** Number of sites, and of sites traced now. */
  get counts(): { sites: number; enabled: number } {
    return { sites: this.#sites.size, enabled: this.#enabled.size };
  }

  /** Sites that `target` selects: `all`, a glob over function names, or a function name. */
  select(target: string): FtraceSite[] {
    return this.#select(target).map((r) => r.site);
  }

  #select(target: string): SiteRecord[] {
    if (target === 'all') return [...this.#sites.values()];
    const re = globToRegExp(target);
    return [...this.#sites.values()].filter(({ site: s }) => re.test(s.func) || re.test(s.func.replace(/ \[.*\]$/, '')));
  }

  /** Enables or disables tracing of the selected sites (those already in that state are skipped). */
  async set(op: 'enable' | 'disable', target: string): Promise<PokeResult & { selected: number }> {
    const sites = this.#select(target);
    // Straight into the batch encoding: no object or byte array per site (38,252 of them for "all").
    const batch = new PatchBatchBuilder(sites.length);
    const patched: SiteRecord[] = [];
    const call = new Uint8Array(5);
    const rel = new DataView(call.buffer);
    call[0] = OPCODE_CALL_REL32;
    const flip: SiteRecord[] = [];
    for (const rec of sites) {
      const s = rec.site;
      const on = rec.enabled;
      if ((op === 'enable') === on) continue;
      // A site with a kprobe calls ftrace_regs_caller, traced or not: only the record changes.
      if (rec.kprobe) {
        flip.push(rec);
        continue;
      }
      // `e8 rel32` calling the trampoline: rel = trampoline - (site + 5), as encodeCall32 computes.
      const r = Number(this.trampoline - s.address) - 5;
      if (r < -0x8000_0000 || r > 0x7fff_ffff)
        throw new RangeError(`call from 0x${s.address.toString(16)} to 0x${this.trampoline.toString(16)} does not fit rel32`);
      rel.setInt32(1, r, true);
      batch.add('ftrace', s.address, on ? call : NOP5, on ? NOP5 : call);
      patched.push(rec);
    }
    const r = await this.poker.pokeBatch(batch);
    // A record of a site removed meanwhile (its module unloaded) is no longer in the map: harmless.
    if (r.ok) for (const rec of [...patched, ...flip]) rec.enabled = op === 'enable';
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
