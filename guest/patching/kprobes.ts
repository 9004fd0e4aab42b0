/**
 * Kprobes: an int3 at a text address, allowed by the verifier's kprobe policy plugin. The
 * original byte is kept to restore on removal (arch_arm_kprobe / arch_disarm_kprobe).
 */
import type { PokeResult, TextPoker } from './text-poker.ts';

/** Installed probes. */
export class Kprobes {
  readonly #saved = new Map<bigint, number>();

  constructor(
    private readonly poker: TextPoker,
    /** Reads one byte of kernel text (text is readable). */
    private readonly readByte: (va: bigint) => number | undefined,
  ) {}

  /** Installs a probe at `addr`. */
  async install(addr: bigint): Promise<PokeResult> {
    if (this.#saved.has(addr)) return { ok: false, reason: `a kprobe is already installed at 0x${addr.toString(16)}`, denied: [], applied: 0 };
    const orig = this.readByte(addr);
    if (orig === undefined) return { ok: false, reason: `0x${addr.toString(16)} is not readable`, denied: [], applied: 0 };
    const r = await this.poker.poke([{ kind: 'kprobe', site: addr, oldBytes: Uint8Array.of(orig), newBytes: Uint8Array.of(0xcc) }]);
    if (r.ok) this.#saved.set(addr, orig);
    return r;
  }

  /** Removes the probe at `addr`. */
  async remove(addr: bigint): Promise<PokeResult> {
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

  /** Addresses with a probe. */
  installed(): bigint[] {
    return [...this.#saved.keys()];
  }
}
