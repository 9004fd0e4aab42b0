/**
 * The x86-64 4-level page walk (SDM vol. 3A, 4.5 "4-Level Paging") over the guest's own page
 * tables in guest memory, and the permission checks that depend on the mode and control
 * registers (4.6 "Access Rights").
 *
 * TRUST: the page tables are guest memory, so an attacker who owns the guest controls them.
 * That is why the EPT, not the walk, has the last word on every access: the walk decides
 * which guest-physical frame is reached, the EPT decides whether that frame may be read,
 * written or executed. Reads of the paging structures themselves are EPT-checked too.
 *
 * Not modelled: accessed/dirty bits (the walk never writes to the tables), protection keys,
 * 5-level paging, PAT/caching attributes.
 */
import { CR0, CR4, EFER, PF_ERR } from '../../shared/x86/cpu.ts';
import type { AccessKind, AccessMode } from '../../shared/guest-cpu.ts';
import type { TlbEntry } from './tlb.ts';

const PTE_P = 1n << 0n;
const PTE_RW = 1n << 1n;
const PTE_US = 1n << 2n;
const PTE_PS = 1n << 7n;
const PTE_G = 1n << 8n;
const PTE_NX = 1n << 63n;
/** Bits 51:12 of an entry: the next table's (or the page's) physical address. */
const ADDR_MASK = 0x000f_ffff_ffff_f000n;
const ADDR_MASK_1G = 0x000f_ffff_c000_0000n;
const ADDR_MASK_2M = 0x000f_ffff_ffe0_0000n;
/** Bits 62:52 are ignored, 51:MAXPHYADDR reserved; with MAXPHYADDR = 52 none are reserved. */

/** Reads one u64 of a paging structure, or reports that the EPT refused the read. */
export type PagingRead = (gpa: bigint) => { ok: true; value: bigint } | { ok: false; gpa: bigint };

/** Outcome of a walk. */
export type WalkResult =
  | { readonly ok: true; readonly entry: TlbEntry }
  | { readonly ok: false; readonly kind: 'page-fault'; readonly errorCode: number; readonly cause: string; readonly detail: string }
  | { readonly ok: false; readonly kind: 'ept'; readonly gpa: bigint };

/** Walks the tables rooted at `cr3` for virtual address `va`. */
export function walk(cr3: bigint, va: bigint, efer: bigint, read: PagingRead): WalkResult {
  const nxe = (efer & EFER.NXE) !== 0n;
  let table = cr3 & ADDR_MASK;
  let writable = true;
  let user = true;
  let nx = false;
  for (let level = 4; level >= 1; level--) {
    const index = (va >> BigInt(12 + 9 * (level - 1))) & 0x1ffn;
    const r = read(table + index * 8n);
    if (!r.ok) return { ok: false, kind: 'ept', gpa: r.gpa };
    const e = r.value;
    if ((e & PTE_P) === 0n) {
      return { ok: false, kind: 'page-fault', errorCode: 0, cause: 'not-present', detail: `level-${level} entry for ${hexv(va)} is not present` };
    }
    if (!nxe && (e & PTE_NX) !== 0n) {
      return { ok: false, kind: 'page-fault', errorCode: PF_ERR.PRESENT | PF_ERR.RSVD, cause: 'reserved-bit', detail: 'NX set while EFER.NXE is clear' };
    }
    writable &&= (e & PTE_RW) !== 0n;
    user &&= (e & PTE_US) !== 0n;
    nx ||= (e & PTE_NX) !== 0n;
    const leafLarge = (level === 3 || level === 2) && (e & PTE_PS) !== 0n;
    if (level === 4 && (e & PTE_PS) !== 0n) {
      return { ok: false, kind: 'page-fault', errorCode: PF_ERR.PRESENT | PF_ERR.RSVD, cause: 'reserved-bit', detail: 'PS set in a PML4 entry' };
    }
    if (leafLarge || level === 1) {
      let base: bigint;
      if (level === 3) base = (e & ADDR_MASK_1G) + (va & 0x3fff_f000n);
      else if (level === 2) base = (e & ADDR_MASK_2M) + (va & 0x1f_f000n);
      else base = e & ADDR_MASK;
      return {
        ok: true,
        entry: { frame: Number(base >> 12n), writable, user, nx, global: (e & PTE_G) !== 0n },
      };
    }
    table = e & ADDR_MASK;
  }
  /* c8 ignore next */
  throw new Error('unreachable: the walk ends at level 1');
}

/**
 * Checks an access against a translation (SDM 4.6). Returns null when allowed, or the #PF
 * error code and the cause. `ac` is RFLAGS.AC (stac/clac), which lifts SMAP for data accesses.
 */
export function checkAccess(
  entry: TlbEntry,
  access: AccessKind,
  mode: AccessMode,
  cr0: bigint,
  cr4: bigint,
  efer: bigint,
  ac: boolean,
): { errorCode: number; cause: string; detail: string } | null {
  const code =
    PF_ERR.PRESENT | (access === 'write' ? PF_ERR.WRITE : 0) | (mode === 'user' ? PF_ERR.USER : 0) | (access === 'fetch' ? PF_ERR.FETCH : 0);
  if (mode === 'user' && !entry.user) return { errorCode: code, cause: 'user-supervisor', detail: 'user access to a supervisor page' };
  if (access === 'write' && !entry.writable && (mode === 'user' || (cr0 & CR0.WP) !== 0n)) {
    return { errorCode: code, cause: 'write-protect', detail: mode === 'user' ? 'write to a read-only page' : 'write to a read-only page with CR0.WP set' };
  }
  if (access === 'fetch') {
    if (entry.nx && (efer & EFER.NXE) !== 0n) return { errorCode: code, cause: 'nx', detail: 'instruction fetch from an NX page' };
    if (mode === 'kernel' && entry.user && (cr4 & CR4.SMEP) !== 0n) {
      return { errorCode: code, cause: 'smep', detail: 'SMEP: supervisor fetch from a user page' };
    }
  } else if (mode === 'kernel' && entry.user && (cr4 & CR4.SMAP) !== 0n && !ac) {
    return { errorCode: code, cause: 'smap', detail: 'SMAP: supervisor data access to a user page' };
  }
  return null;
}

function hexv(v: bigint): string {
  return `0x${v.toString(16)}`;
}
