/**
 * The x86-64 4-level page walk (SDM vol. 3A, 4.5 "4-Level Paging") over the guest's own page
 * tables in guest memory, the permission checks that depend on the mode and control
 * registers (4.6 "Access Rights"), the page-fault error code (4.7) and the accessed and dirty
 * flags the walk writes back (4.8). docs/mmu.md says what is modelled and what is not.
 *
 * TRUST: the page tables are guest memory, so an attacker who owns the guest controls them.
 * That is why the EPT, not the walk, has the last word on every access: the walk decides
 * which guest-physical frame is reached, the EPT decides whether that frame may be read,
 * written or executed. The walk's own reads of the paging structures, and its writes of the
 * accessed and dirty flags, are EPT-checked too ({@link PagingMemory}).
 */
import { CR0, CR4, EFER, PF_ERR, PTE, PTE_ADDR_MASK as ADDR_MASK } from '../../shared/x86/cpu.ts';
import type { AccessKind, AccessMode } from '../../shared/guest-cpu.ts';
import { gpaToGfn, type GuestPhysAddr, type GuestVirtAddr } from '../../shared/addr.ts';
import type { TlbEntry } from './tlb.ts';

const { P: PTE_P, RW: PTE_RW, US: PTE_US, A: PTE_A, D: PTE_D, PS: PTE_PS, G: PTE_G, NX: PTE_NX } = PTE;
const ADDR_MASK_1G = 0x000f_ffff_c000_0000n;
const ADDR_MASK_2M = 0x000f_ffff_ffe0_0000n;
/** SDM Table 4-17: bits 29:13 of a PDPTE that maps a 1 GiB page are reserved (bit 12 is PAT). */
const RSVD_1G = 0x3fff_e000n;
/** SDM Table 4-18: bits 20:13 of a PDE that maps a 2 MiB page are reserved (bit 12 is PAT). */
const RSVD_2M = 0x1f_e000n;
/** The shift of the table index of each level (index 1..4): 12 + 9 * (level - 1). */
const LEVEL_SHIFT: readonly bigint[] = [0n, 12n, 21n, 30n, 39n];
/** The largest MAXPHYADDR of 4-level paging (SDM 4.1.4): entries hold 52-bit addresses. */
const MAX_PHYS_BITS = 52;

/** MAXPHYADDR when the machine names none: `x86_phys_bits` of the reference CPUs. */
export const DEFAULT_PHYS_BITS = 40;

/**
 * Why `physBits` cannot be a MAXPHYADDR, or undefined when it can: an integer from 32 to 52
 * (the range cpu-model.ts accepts for `x86_phys_bits`).
 */
export function physBitsError(physBits: number): string | undefined {
  if (Number.isInteger(physBits) && physBits >= 32 && physBits <= MAX_PHYS_BITS) return undefined;
  return `physBits (MAXPHYADDR) must be an integer from 32 to ${MAX_PHYS_BITS}, got ${physBits}`;
}

/**
 * Bits MAXPHYADDR..51 of a paging-structure entry, reserved in every entry (SDM Tables
 * 4-15..4-20). Throws a RangeError with {@link physBitsError}'s message for a bad value.
 */
export function reservedAddressBits(physBits: number): bigint {
  const bad = physBitsError(physBits);
  if (bad !== undefined) throw new RangeError(bad);
  return ((1n << BigInt(MAX_PHYS_BITS)) - 1n) & ~((1n << BigInt(physBits)) - 1n);
}

/**
 * The walk's way into the paging structures. Both are guest-physical accesses the EPT checks
 * as supervisor data accesses; a refused one is reported as the gpa (an EPT violation whose
 * qualification says "paging-structure access", memory-access.ts).
 */
export interface PagingMemory {
  /** Reads the u64 at `gpa`, or undefined when the EPT refuses the read. */
  read(gpa: GuestPhysAddr): bigint | undefined;
  /** Writes the u64 at `gpa` (an accessed/dirty update); false when the EPT refuses the write. */
  write(gpa: GuestPhysAddr, value: bigint): boolean;
}

/** The registers the walk and the checks depend on (memory-access.ts `PagingRegs`). */
export interface WalkRegs {
  readonly cr0: bigint;
  readonly cr3: bigint;
  readonly cr4: bigint;
  readonly efer: bigint;
  readonly ac: boolean;
}

/** A #PF the walk or the checks decided: error code, cause and detail for the guest. */
export interface PageFault {
  readonly kind: 'page-fault';
  readonly errorCode: number;
  readonly cause: string;
  readonly detail: string;
}

/** A paging-structure access the EPT refused: the entry's gpa and whether it was the A/D write. */
export interface PagingEptFault {
  readonly kind: 'ept';
  readonly gpa: GuestPhysAddr;
  readonly access: 'read' | 'write';
}

/** Outcome of a walk. */
export type WalkResult = { readonly ok: true; readonly entry: TlbEntry } | ({ readonly ok: false } & (PageFault | PagingEptFault));

/**
 * The #PF error-code bits of an access (SDM 4.7): W for a write, U/S at CPL 3, and I/D for an
 * instruction fetch only when CR4.SMEP = 1 or EFER.NXE = 1 (with 4-level paging); otherwise
 * a fetch fault has I/D = 0.
 */
export function accessCodeBits(access: AccessKind, mode: AccessMode, cr4: bigint, efer: bigint): number {
  let code = mode === 'user' ? PF_ERR.USER : 0;
  if (access === 'write') code |= PF_ERR.WRITE;
  else if (access === 'fetch' && ((cr4 & CR4.SMEP) !== 0n || (efer & EFER.NXE) !== 0n)) code |= PF_ERR.FETCH;
  return code;
}

/**
 * Walks the tables rooted at CR3 for `va` and checks `access` against the result. With
 * `update`, sets the accessed flag of every paging-structure entry the walk goes through
 * (as it goes: they stay set when a lower level faults, as kvm-unit-tests' access.c expects)
 * and, once the access is allowed, the accessed flag of the leaf and, for a write, its dirty
 * flag (SDM 4.8). Without `update` (the core's own reads) nothing is written and nothing is
 * checked but presence and reserved bits. The returned entry's `dirty` says whether the
 * leaf's D flag is now 1, so a TLB hit can tell whether a write must walk again.
 */
export function walk(va: GuestVirtAddr, access: AccessKind, mode: AccessMode, r: WalkRegs, rsvdAddr: bigint, mem: PagingMemory, update: boolean): WalkResult {
  // Reserved in every entry: MAXPHYADDR..51, and XD unless EFER.NXE = 1 (SDM 4.5.4).
  const rsvd = (r.efer & EFER.NXE) !== 0n ? rsvdAddr : rsvdAddr | PTE_NX;
  let table = r.cr3 & ADDR_MASK;
  // Hot path (every TLB miss): BigInt operations allocate, so the rights are combined with
  // one AND (RW, US) and one OR (XD) per level, and the reserved bits tested with one mask.
  let all = PTE_RW | PTE_US;
  let any = 0n;
  for (let level = 4; level >= 1; level--) {
    // INVARIANT: `table` is bits 51:12 of an entry (or CR3) and the index adds at most 4095,
    // so the sum is below 2^52: a guest-physical address by construction.
    const gpa = (table + (((va >> LEVEL_SHIFT[level]!) & 0x1ffn) << 3n)) as GuestPhysAddr;
    const e = mem.read(gpa);
    if (e === undefined) return { ok: false, kind: 'ept', gpa, access: 'read' };
    if ((e & PTE_P) === 0n) {
      return {
        ok: false,
        kind: 'page-fault',
        errorCode: accessCodeBits(access, mode, r.cr4, r.efer),
        cause: 'not-present',
        detail: `level-${level} entry for ${hexv(va)} is not present`,
      };
    }
    const ps = level > 1 && (e & PTE_PS) !== 0n;
    const large = ps && level < 4;
    if ((e & (large ? rsvd | (level === 3 ? RSVD_1G : RSVD_2M) : rsvd)) !== 0n || (ps && level === 4)) {
      const errorCode = PF_ERR.PRESENT | PF_ERR.RSVD | accessCodeBits(access, mode, r.cr4, r.efer);
      return {
        ok: false,
        kind: 'page-fault',
        errorCode,
        cause: 'reserved-bit',
        detail: `level-${level} entry for ${hexv(va)}: ${reservedBitsSet(e, level, large, rsvd)}`,
      };
    }
    all &= e;
    any |= e;
    if (large || level === 1) {
      let base: bigint;
      if (level === 3) base = (e & ADDR_MASK_1G) + (va & 0x3fff_f000n);
      else if (level === 2) base = (e & ADDR_MASK_2M) + (va & 0x1f_f000n);
      else base = e & ADDR_MASK;
      // `dirty` as it will be once this access is done: a write sets D below, or fails and
      // the entry is dropped. One object shape for every TLB entry (no spread copies).
      const entry: TlbEntry = {
        // INVARIANT: bits 51:12 of the leaf plus an in-page offset: below 2^52 by construction.
        frame: gpaToGfn(base as GuestPhysAddr),
        writable: (all & PTE_RW) !== 0n,
        user: (all & PTE_US) !== 0n,
        nx: (any & PTE_NX) !== 0n,
        global: (e & PTE_G) !== 0n,
        dirty: access === 'write' || (e & PTE_D) !== 0n,
      };
      if (!update) return { ok: true, entry };
      const denied = checkAccess(entry, access, mode, r);
      if (denied) return { ok: false, kind: 'page-fault', ...denied };
      const want = access === 'write' ? PTE_A | PTE_D : PTE_A;
      if ((e & want) !== want && !mem.write(gpa, e | want)) return { ok: false, kind: 'ept', gpa, access: 'write' };
      return { ok: true, entry };
    }
    if (update && (e & PTE_A) === 0n && !mem.write(gpa, e | PTE_A)) return { ok: false, kind: 'ept', gpa, access: 'write' };
    table = e & ADDR_MASK;
  }
  /* c8 ignore next */
  throw new Error('unreachable: the walk ends at level 1');
}

/** Names the reserved bits set in a present entry at `level` (SDM Tables 4-14..4-20), once the walk found some. */
function reservedBitsSet(e: bigint, level: number, large: boolean, rsvd: bigint): string {
  if ((e & rsvd) !== 0n) return (e & rsvd & PTE_NX) !== 0n ? 'XD set while EFER.NXE is clear' : `bits above MAXPHYADDR set (0x${(e & rsvd).toString(16)})`;
  if (level === 4) return 'PS set in a PML4 entry';
  return large && level === 3 ? 'bits 29:13 of a 1 GiB page entry set' : 'bits 20:13 of a 2 MiB page entry set';
}

/**
 * Checks an access against a translation (SDM 4.6). Returns null when allowed, or the #PF
 * error code and the cause. `r.ac` is RFLAGS.AC (stac/clac), which lifts SMAP for data
 * accesses. Accesses are explicit: implicit supervisor accesses (to the GDT, IDT, ...) are
 * not modelled (docs/mmu.md).
 */
export function checkAccess(entry: TlbEntry, access: AccessKind, mode: AccessMode, r: WalkRegs): { errorCode: number; cause: string; detail: string } | null {
  if (mode === 'user' && !entry.user) return denial(access, mode, r, 'user-supervisor', 'user access to a supervisor page');
  if (access === 'write' && !entry.writable && (mode === 'user' || (r.cr0 & CR0.WP) !== 0n)) {
    return denial(access, mode, r, 'write-protect', mode === 'user' ? 'write to a read-only page' : 'write to a read-only page with CR0.WP set');
  }
  if (access === 'fetch') {
    if (entry.nx && (r.efer & EFER.NXE) !== 0n) return denial(access, mode, r, 'nx', 'instruction fetch from an NX page');
    if (mode === 'kernel' && entry.user && (r.cr4 & CR4.SMEP) !== 0n) return denial(access, mode, r, 'smep', 'SMEP: supervisor fetch from a user page');
  } else if (mode === 'kernel' && entry.user && (r.cr4 & CR4.SMAP) !== 0n && !r.ac) {
    return denial(access, mode, r, 'smap', 'SMAP: supervisor data access to a user page');
  }
  return null;
}

/** A protection #PF (P = 1) of `access`, with its cause. Module-level: no closure on the hot path. */
function denial(access: AccessKind, mode: AccessMode, r: WalkRegs, cause: string, detail: string): { errorCode: number; cause: string; detail: string } {
  return { errorCode: PF_ERR.PRESENT | accessCodeBits(access, mode, r.cr4, r.efer), cause, detail };
}

function hexv(v: bigint): string {
  return `0x${v.toString(16)}`;
}
