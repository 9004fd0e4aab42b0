/**
 * Static keys and their jump labels (kernel/jump_label.c): enabling or disabling a key
 * rewrites every `__jump_table` entry of that key between the NOP and the jump to the entry's
 * target, through the authenticated text-poke path. An entry jumps when the key's state
 * differs from the entry's branch bit (jump_label_type(): enabled ^ branch).
 *
 * Entries in init memory (the kernel's [__init_begin, __init_end), `.exit.text` included, and
 * a module's init layout) stay the key's, but are never patched after init: 6.1's
 * jump_label_can_update() skips an entry marked init (jump_label_init, jump_label_add_module),
 * so enabling a key whose only sites are there succeeds and patches nothing.
 */
import { NOP2, NOP5, encodeJumpLabel } from '../../shared/x86/patch-encodings.ts';
import type { PatchRequest } from '../../shared/heki-descriptors.ts';
import type { PokeResult, TextPoker } from './text-poker.ts';

/** One jump label. */
export interface JumpLabel {
  readonly site: bigint;
  readonly target: bigint;
  readonly key: bigint;
  /** The entry's branch bit (bit 0 of its key field). */
  readonly branch: boolean;
  readonly length: 2 | 5;
  /** In freed init memory: kept for the key, never patched (jump_entry_is_init). */
  readonly init?: boolean;
}

/** Static keys of the kernel and its modules. */
export class JumpLabels {
  readonly #byKey = new Map<bigint, JumpLabel[]>();
  /** Current bytes at each site, as the guest last set them. */
  readonly #state = new Map<bigint, Uint8Array>();

  constructor(private readonly poker: TextPoker) {}

  /** Adds entries with the bytes their sites hold now. */
  addEntries(entries: Iterable<JumpLabel & { current: Uint8Array }>): void {
    for (const e of entries) {
      const list = this.#byKey.get(e.key) ?? [];
      list.push(e);
      this.#byKey.set(e.key, list);
      if (!e.init) this.#state.set(e.site, Uint8Array.from(e.current));
    }
  }

  /**
   * Marks the entries at these sites init (their memory is freed: a module went LIVE): they
   * stay their keys', but are never patched again, as jump_label_can_update() skips them.
   */
  retireSites(sites: ReadonlySet<bigint>): void {
    if (sites.size === 0) return;
    for (const [k, list] of this.#byKey)
      this.#byKey.set(
        k,
        list.map((e) => (sites.has(e.site) && !e.init ? { ...e, init: true } : e)),
      );
    for (const s of sites) this.#state.delete(s);
  }

  /** Forgets entries at these sites (a module unloaded). */
  removeSites(sites: ReadonlySet<bigint>): void {
    for (const [k, list] of this.#byKey) {
      const kept = list.filter((e) => !sites.has(e.site));
      if (kept.length) this.#byKey.set(k, kept);
      else this.#byKey.delete(k);
    }
    for (const s of sites) this.#state.delete(s);
  }

  /** Keys that have entries. */
  keys(): bigint[] {
    return [...this.#byKey.keys()];
  }

  /** Entries of `key`. */
  entries(key: bigint): readonly JumpLabel[] {
    return this.#byKey.get(key) ?? [];
  }

  /** Whether `key` is enabled now, read from its first entry (jumps = enabled ^ branch); undefined without entries. */
  enabled(key: bigint): boolean | undefined {
    const e = this.#byKey.get(key)?.[0];
    if (!e) return undefined;
    const cur = this.#state.get(e.site);
    if (!cur) return undefined;
    const jumps = cur[0] === 0xeb || cur[0] === 0xe9;
    return jumps !== e.branch;
  }

  /** static_key_enable / static_key_disable. */
  async set(key: bigint, enabled: boolean): Promise<PokeResult & { entries: number }> {
    const list = this.#byKey.get(key);
    if (!list) return { ok: false, reason: `no jump label uses key 0x${key.toString(16)}`, denied: [], applied: 0, entries: 0 };
    const patches: PatchRequest[] = [];
    for (const e of list) {
      if (e.init) continue;
      const want = encodeJumpLabel(e.site, e.length, e.target, enabled !== e.branch);
      const cur = this.#state.get(e.site) ?? Uint8Array.from(e.length === 2 ? NOP2 : NOP5);
      if (cur.every((b, i) => b === want[i])) continue;
      patches.push({ kind: 'jump-label', site: e.site, oldBytes: cur, newBytes: want });
    }
    const r = await this.poker.poke(patches);
    if (r.ok) for (const p of patches) this.#state.set(p.site, p.newBytes);
    return { ...r, entries: list.length };
  }
}
