/**
 * Kprobes: an int3 at a text address, allowed by the verifier's kprobe policy plugin. The
 * original byte is kept to restore on removal (arch_arm_kprobe / arch_disarm_kprobe).
 *
 * A probe on an ftrace location is armed through ftrace instead, as 6.1 does with
 * CONFIG_KPROBES_ON_FTRACE (kernel/kprobes.c: check_ftrace_location marks it
 * KPROBE_FLAG_FTRACE, arm_kprobe_ftrace registers kprobe_ftrace_ops for the ip): the site's
 * call goes to the ftrace trampoline (ftrace.ts `armKprobe`), an ftrace patch the verifier's
 * ftrace plugin decides. A probe inside the site's 5 bytes but not at its start is refused
 * with -EILSEQ, as check_ftrace_location refuses it.
 */
import type { Ftrace } from './ftrace.ts';
import type { PokeResult, TextPoker } from './text-poker.ts';

/** Installed probes. */
export class Kprobes {
  readonly #saved = new Map<bigint, number>();

  constructor(
    private readonly poker: TextPoker,
    /** Reads one byte of kernel text (text is readable). */
    private readonly readByte: (va: bigint) => number | undefined,
    /** The kernel's ftrace, for probes on ftrace locations (none: every probe is an int3). */
    private readonly ftrace?: Ftrace,
  ) {}

  /** Installs a probe at `addr`. */
  async install(addr: bigint): Promise<PokeResult> {
    const site = this.ftrace?.siteCovering(addr);
    if (site !== undefined) {
      if (site !== addr)
        return refused(`0x${addr.toString(16)} is inside the ftrace site 0x${site.toString(16)} (-EILSEQ: a kprobe there goes on the site's first byte)`);
      if (this.ftrace!.hasKprobe(addr)) return refused(`a kprobe is already installed at 0x${addr.toString(16)}`);
      return this.ftrace!.armKprobe(addr, true);
    }
    if (this.#saved.has(addr)) return refused(`a kprobe is already installed at 0x${addr.toString(16)}`);
    const orig = this.readByte(addr);
    if (orig === undefined) return { ok: false, reason: `0x${addr.toString(16)} is not readable`, denied: [], applied: 0 };
    const r = await this.poker.poke([{ kind: 'kprobe', site: addr, oldBytes: Uint8Array.of(orig), newBytes: Uint8Array.of(0xcc) }]);
    if (r.ok) this.#saved.set(addr, orig);
    return r;
  }

  /** Removes the probe at `addr`. */
  async remove(addr: bigint): Promise<PokeResult> {
    if (this.ftrace?.hasKprobe(addr)) return this.ftrace.armKprobe(addr, false);
    const orig = this.#saved.get(addr);
    if (orig === undefined) return { ok: false, reason: `no kprobe at 0x${addr.toString(16)}`, denied: [], applied: 0 };
    const r = await this.poker.poke([{ kind: 'kprobe', site: addr, oldBytes: Uint8Array.of(0xcc), newBytes: Uint8Array.of(orig) }]);
    if (r.ok) this.#saved.delete(addr);
    return r;
  }

  /** Installed probes with their original bytes, as plain data. */
  exportState(): Array<[bigint, number]> {
    return [...this.#saved];
  }

  /** Takes a restored kernel's probes back (the text already holds the int3s). */
  importState(probes: ReadonlyArray<readonly [bigint, number]>): void {
    this.#saved.clear();
    for (const [a, b] of probes) this.#saved.set(a, b);
  }

  /** Addresses with a probe (int3 and ftrace-armed). */
  installed(): bigint[] {
    return [...this.#saved.keys(), ...(this.ftrace?.kprobeSites() ?? [])];
  }
}

function refused(reason: string): PokeResult {
  return { ok: false, reason, denied: [], applied: 0 };
}
