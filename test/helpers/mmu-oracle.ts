/**
 * The expected outcome of one guest memory access, written from the Intel SDM alone (vol. 3A
 * 4.5 reserved bits, 4.6 access rights, 4.7 the #PF error code, 4.8 accessed and dirty
 * flags, 4.10 TLBs; vol. 3C 29.3.3.2 mode-based execute control), not from the MMU's code:
 * the grid test (test/unit/mmu-access-grid.test.ts) compares the vCPU against it case by case.
 */
import type { AccessKind } from '../../shared/guest-cpu.ts';
import { PTE } from '../../shared/x86/cpu.ts';
import { EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

/** One paging-structure entry of a walk: where it is and what it holds. */
export interface OracleEntry {
  readonly gpa: bigint;
  readonly value: bigint;
}

/** The machine state an access depends on. */
export interface OracleEnv {
  readonly wp: boolean;
  readonly smep: boolean;
  readonly smap: boolean;
  readonly ac: boolean;
  readonly nxe: boolean;
  /** MAXPHYADDR. */
  readonly physBits: number;
  /** EPT bits of the frame the access reaches. */
  readonly targetEpt: number;
  /** Whether the EPT lets the walk write the paging-structure frames (A/D updates). */
  readonly tablesWritable: boolean;
}

/** An access: its kind and whether it is made at CPL 3. */
export interface OracleAccess {
  readonly kind: AccessKind;
  readonly user: boolean;
}

/** What the access does. */
export type OracleOutcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'pf'; readonly code: number }
  | { readonly kind: 'ept'; readonly gpa: bigint; readonly access: AccessKind; readonly pageWalk: boolean; readonly code: number };

const { P, RW, US, A, D, PS, NX: XD } = PTE;
/** #PF error-code bits (SDM Figure 4-12). */
export const ERR = { P: 1, W: 2, U: 4, RSVD: 8, ID: 16 } as const;

/** Bits lo..hi (inclusive) set. */
function bits(lo: number, hi: number): bigint {
  return ((1n << BigInt(hi - lo + 1)) - 1n) << BigInt(lo);
}

/**
 * Runs `access` against the walk `entries` (PML4E first, the leaf last: 4 entries for a
 * 4 KiB page, 3 for 2 MiB, 2 for 1 GiB) reaching `targetGpa`. Returns the outcome and the
 * entries' values afterwards (with the accessed and dirty flags the access set).
 */
export function oracle(entries: readonly OracleEntry[], targetGpa: bigint, env: OracleEnv, access: OracleAccess): { outcome: OracleOutcome; after: bigint[] } {
  const after = entries.map((e) => e.value);
  const write = access.kind === 'write';
  const fetch = access.kind === 'fetch';
  // SDM 4.7: W and U/S describe the access; I/D is set for a fetch only when SMEP or NXE is on.
  const code = (access.user ? ERR.U : 0) | (write ? ERR.W : 0) | (fetch && (env.smep || env.nxe) ? ERR.ID : 0);
  const done = (outcome: OracleOutcome) => ({ outcome, after });
  let allUser = true;
  let allWritable = true;
  let anyXd = false;
  for (let i = 0; i < entries.length; i++) {
    const level = 4 - i;
    const leaf = i === entries.length - 1;
    const e = after[i]!;
    if ((e & P) === 0n) return done({ kind: 'pf', code });
    // SDM 4.5.4 and Tables 4-15..4-20: what must be zero in a present entry.
    let reserved = bits(env.physBits, 51);
    if (!env.nxe) reserved |= XD;
    if (level === 4) reserved |= PS;
    if (leaf && level === 3) reserved |= bits(13, 29);
    if (leaf && level === 2) reserved |= bits(13, 20);
    if ((e & reserved) !== 0n) return done({ kind: 'pf', code: ERR.P | ERR.RSVD | code });
    allUser &&= (e & US) !== 0n;
    allWritable &&= (e & RW) !== 0n;
    anyXd ||= (e & XD) !== 0n;
    if (!leaf && (e & A) === 0n) {
      // SDM 4.8: the accessed flag of every entry used; a guest-physical write the EPT checks.
      if (!env.tablesWritable) return done({ kind: 'ept', gpa: entries[i]!.gpa, access: 'write', pageWalk: true, code: ERR.P | code });
      after[i] = e | A;
    }
  }
  // SDM 4.6.1: the access rights of the translation.
  let allowed: boolean;
  if (access.user) {
    allowed = allUser && (!write || allWritable) && !(fetch && env.nxe && anyXd);
  } else if (fetch) {
    allowed = !(env.nxe && anyXd) && !(allUser && env.smep);
  } else {
    const smapBlocks = allUser && env.smap && !env.ac;
    allowed = !smapBlocks && !(write && env.wp && !allWritable);
  }
  if (!allowed) return done({ kind: 'pf', code: ERR.P | code });
  const li = entries.length - 1;
  const want = write ? A | D : A;
  if ((after[li]! & want) !== want) {
    if (!env.tablesWritable) return done({ kind: 'ept', gpa: entries[li]!.gpa, access: 'write', pageWalk: true, code: ERR.P | code });
    after[li] = after[li]! | want;
  }
  // The EPT check of the frame; with MBEC a fetch needs X-user for a user-mode linear address
  // (U/S = 1 at every level), X-supervisor otherwise, whatever the CPL (SDM 29.3.3.2).
  const need = write ? EPT_W : fetch ? (allUser ? EPT_XU : EPT_XS) : EPT_R;
  if ((env.targetEpt & need) === 0) return done({ kind: 'ept', gpa: targetGpa, access: access.kind, pageWalk: false, code: ERR.P | code });
  return done({ kind: 'ok' });
}
