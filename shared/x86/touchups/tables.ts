/**
 * The tables the boot touch-ups read, in one shape for vmlinux and for a module: what
 * `alternative_instructions()` (arch/x86/kernel/alternative.c), `module_finalize()`
 * (arch/x86/kernel/module.c) and `static_call_init()` (kernel/static_call_inline.c) walk.
 * Addresses are resolved (self-relative offsets added to their field's address) and
 * kernel virtual; the entries keep the table's order, which the passes depend on (a later
 * alternative may overwrite an earlier one).
 */

/** One `struct paravirt_patch_site { u8 *instr; u8 type; u8 len; }` (16 bytes). */
export interface ParavirtSite {
  readonly addr: bigint;
  /** Index of the op in `pv_ops` (`*((void **)&pv_ops + type)`). */
  readonly type: number;
  readonly len: number;
}

/** One `struct alt_instr` (12 bytes: s32 instr, s32 repl, u16 cpuid, u8 instrlen, u8 replacementlen). */
export interface AltInstr {
  /** Address of the entry itself (for messages). */
  readonly entry: bigint;
  readonly instr: bigint;
  readonly repl: bigint;
  /** Feature number, bit 15 = ALTINSTR_FLAG_INV (patch when the feature is absent). */
  readonly cpuid: number;
  readonly instrlen: number;
  readonly replacementlen: number;
}

/** One `struct static_call_site` with its key resolved. */
export interface StaticCallSiteEntry {
  readonly site: bigint;
  /** `__SCK__<name>` address, flags stripped. */
  readonly key: bigint;
  /** STATIC_CALL_SITE_TAIL. */
  readonly tail: boolean;
}

/** Every table a boot (or a module load) touches up text from. */
export interface TouchupTables {
  /** `.parainstructions`. */
  readonly paravirt: readonly ParavirtSite[];
  /** `.retpoline_sites`: addresses of `call`/`jmp`/`Jcc` to `__x86_indirect_thunk_*`. */
  readonly retpolines: readonly bigint[];
  /** `.return_sites`: addresses of `jmp __x86_return_thunk`. */
  readonly returns: readonly bigint[];
  /** `.altinstructions`, in table order. */
  readonly alternatives: readonly AltInstr[];
  /** `.smp_locks`: addresses of `lock` prefixes (entries with a zero offset left out, as the kernel skips them). */
  readonly smpLocks: readonly bigint[];
  /** `.static_call_sites`. */
  readonly staticCalls: readonly StaticCallSiteEntry[];
}

/** The table names the touch-ups report sites by. */
export type TouchupTable = 'paravirt' | 'retpoline' | 'return' | 'alternative' | 'smp-lock' | 'static-call' | 'ftrace' | 'jump-label';

/** The ELF section each table comes from, for messages. */
export const TOUCHUP_TABLE_SECTION: Readonly<Record<TouchupTable, string>> = Object.freeze({
  paravirt: '.parainstructions',
  retpoline: '.retpoline_sites',
  return: '.return_sites',
  alternative: '.altinstructions',
  'smp-lock': '.smp_locks',
  'static-call': '.static_call_sites',
  ftrace: '__mcount_loc',
  'jump-label': '__jump_table',
});

const le = (b: Uint8Array): DataView => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Self-relative s32 table at `vaddr` (`.retpoline_sites`, `.return_sites`, `.smp_locks`); `skipZero` drops zero offsets. */
export function readS32Table(bytes: Uint8Array, vaddr: bigint, skipZero = false): bigint[] {
  const dv = le(bytes);
  const out: bigint[] = [];
  for (let i = 0; i + 4 <= bytes.length; i += 4) {
    const off = dv.getInt32(i, true);
    if (skipZero && off === 0) continue;
    out.push(vaddr + BigInt(i + off));
  }
  return out;
}

/** `.altinstructions` at `vaddr`. */
export function readAltInstructions(bytes: Uint8Array, vaddr: bigint): AltInstr[] {
  const dv = le(bytes);
  const out: AltInstr[] = [];
  for (let i = 0; i + 12 <= bytes.length; i += 12) {
    const entry = vaddr + BigInt(i);
    out.push({
      entry,
      instr: entry + BigInt(dv.getInt32(i, true)),
      repl: entry + 4n + BigInt(dv.getInt32(i + 4, true)),
      cpuid: dv.getUint16(i + 8, true),
      instrlen: bytes[i + 10]!,
      replacementlen: bytes[i + 11]!,
    });
  }
  return out;
}

/** `.parainstructions` (already relocated: `instr` is an absolute address). */
export function readParainstructions(bytes: Uint8Array): ParavirtSite[] {
  const dv = le(bytes);
  const out: ParavirtSite[] = [];
  for (let i = 0; i + 16 <= bytes.length; i += 16) out.push({ addr: dv.getBigUint64(i, true), type: bytes[i + 8]!, len: bytes[i + 9]! });
  return out;
}
