/**
 * Runtime state a real boot leaves in the kernel text that no simulated guest produces,
 * because it comes from the kernel's own init code (initcalls enabling static keys, drivers
 * updating static calls): read off a reference dump, as per-key states, so `heki reference
 * check` can set them through the ordinary authenticated jump-label and static-call paths
 * before comparing.
 *
 * A jump-label entry jumps when its key's state differs from its branch bit
 * (kernel/jump_label.c jump_label_type(): enabled ^ branch); a key's state is read from its
 * entries, which must agree. A static call's function is read from its trampoline (`jmp func`,
 * or a return form for NULL).
 */
import { classifyJumpSite } from '../../shared/kernel-image/jump-table.ts';

/** One `__jump_table` entry as the inference needs it. */
export interface JumpEntryRef {
  readonly site: bigint;
  readonly key: bigint;
  /** The entry's branch bit (bit 0 of its key field). */
  readonly branch: boolean;
  readonly length: 2 | 5;
}

/** A key whose entries disagree in the reference: no state explains them. */
export interface InconsistentKey {
  readonly key: bigint;
  readonly sites: readonly bigint[];
}

/** Per-key states read off a text dump. */
export interface JumpKeyStates {
  readonly enabled: ReadonlyMap<bigint, boolean>;
  readonly inconsistent: readonly InconsistentKey[];
  /** Entries whose bytes are neither the NOP nor a jump. */
  readonly unreadable: readonly bigint[];
}

/** Reads every key's state from the bytes `at(site, len)` returns (undefined outside the dump). */
export function jumpKeyStates(entries: readonly JumpEntryRef[], at: (site: bigint, len: number) => Uint8Array | undefined): JumpKeyStates {
  const enabled = new Map<bigint, boolean>();
  const bad = new Map<bigint, bigint[]>();
  const unreadable: bigint[] = [];
  for (const e of entries) {
    const bytes = at(e.site, e.length);
    if (!bytes) continue;
    const c = classifyJumpSite(e.site, bytes);
    if (!c) {
      unreadable.push(e.site);
      continue;
    }
    const jumps = c.kind === 'jmp8' || c.kind === 'jmp32';
    const state = jumps !== e.branch;
    const prev = enabled.get(e.key);
    if (prev === undefined) enabled.set(e.key, state);
    else if (prev !== state) {
      const list = bad.get(e.key) ?? [];
      list.push(e.site);
      bad.set(e.key, list);
    }
  }
  return { enabled, inconsistent: [...bad].map(([key, sites]) => ({ key, sites })), unreadable };
}

/** The keys whose state in `real` differs from `booted`: what init code changed. */
export function changedKeys(booted: JumpKeyStates, real: JumpKeyStates): Map<bigint, boolean> {
  const out = new Map<bigint, boolean>();
  for (const [key, state] of real.enabled) if (booted.enabled.get(key) !== state) out.set(key, state);
  return out;
}
