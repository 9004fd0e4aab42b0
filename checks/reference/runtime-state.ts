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
 * or a return form for NULL): static_call_update() rewrites the trampoline with every site.
 */
import { classifyJumpSite } from '../../shared/kernel-image/jump-table.ts';
import type { Elf64 } from '../../shared/elf/elf64.ts';
import { decodeStaticCallInsn } from '../../shared/kernel-image/static-calls.ts';

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

/** A static call key with its trampoline (`__SCK__<name>`, `__SCT__<name>`). */
export interface StaticCallKeyRef {
  readonly key: bigint;
  readonly trampoline: bigint;
}

/**
 * What a trampoline says its key calls: the `jmp` target, or null (NULL) for a return form:
 * `ret; int3...` or, on a return-thunk kernel, `jmp __x86_return_thunk`
 * (arch/x86/kernel/static_call.c __static_call_transform(), case RET). Undefined when the 5
 * bytes are neither.
 */
export function trampolineFunction(trampoline: bigint, bytes: Uint8Array, returnThunk: bigint | undefined): bigint | null | undefined {
  const insn = decodeStaticCallInsn(trampoline, bytes);
  if (insn.kind === 'ret') return null;
  if (insn.kind !== 'jmp') return undefined;
  return insn.target === returnThunk ? null : insn.target;
}

/** Per-key functions read off a text dump's trampolines. */
export interface StaticCallStates {
  readonly func: ReadonlyMap<bigint, bigint | null>;
  /** Trampolines whose bytes are neither a `jmp` nor a return form. */
  readonly unreadable: readonly bigint[];
}

/** Reads every key's function from its trampoline's bytes `at(trampoline, 5)` (undefined outside the dump). */
export function staticCallStates(
  keys: readonly StaticCallKeyRef[],
  at: (va: bigint, len: number) => Uint8Array | undefined,
  returnThunk: bigint | undefined,
): StaticCallStates {
  const func = new Map<bigint, bigint | null>();
  const unreadable: bigint[] = [];
  for (const k of keys) {
    const bytes = at(k.trampoline, 5);
    if (!bytes) continue;
    const f = trampolineFunction(k.trampoline, bytes, returnThunk);
    if (f === undefined) unreadable.push(k.trampoline);
    else func.set(k.key, f);
  }
  return { func, unreadable };
}

/** The keys whose function in `real` differs from `booted`: what init code updated. */
export function changedStaticCalls(booted: StaticCallStates, real: StaticCallStates): Map<bigint, bigint | null> {
  const out = new Map<bigint, bigint | null>();
  for (const [key, f] of real.func) if (booted.func.get(key) !== f) out.set(key, f);
  return out;
}

/** R_X86_64_PC32, R_X86_64_PLT32 and R_X86_64_32S: the relocation types a per-CPU reference in text uses. */
const R_X86_64_PC32 = 2;
const R_X86_64_PLT32 = 4;
const R_X86_64_32S = 11;

/**
 * The per-CPU pointer pcpu_alloc() gave a module with per-CPU data in the real boot, read off
 * the module's real text: a relocation of `.text` against a symbol of the per-CPU section
 * stores `ptr + sym + addend` (minus the place for PC32), so one such word gives `ptr`.
 * `textAddr` and `realText` are the module's `.text` as the real kernel held it; undefined
 * when no relocation of the text refers to the per-CPU section.
 */
export function inferPercpuPointer(elf: Elf64, percpuShndx: number, textAddr: bigint, realText: Uint8Array): bigint | undefined {
  const text = elf.sections.findIndex((s) => s.name === '.text');
  if (text < 0) return undefined;
  for (const rs of elf.relocations) {
    if (rs.appliesTo !== text) continue;
    for (const r of rs.entries) {
      const sym = elf.symbols[r.symIndex];
      if (!sym || sym.shndx !== percpuShndx) continue;
      if (r.type !== R_X86_64_PC32 && r.type !== R_X86_64_PLT32 && r.type !== R_X86_64_32S) continue;
      const off = Number(r.offset);
      if (off + 4 > realText.length) continue;
      const word = BigInt(new DataView(realText.buffer, realText.byteOffset).getInt32(off, true));
      const place = textAddr + r.offset;
      const ptr = r.type === R_X86_64_32S ? word - r.addend - sym.value : word - r.addend + place - sym.value;
      return BigInt.asUintN(64, ptr);
    }
  }
  return undefined;
}
