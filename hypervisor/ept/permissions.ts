/**
 * EPT permission bits of one guest frame, as the core stores them.
 *
 * R, W and X follow the EPT entry's bits 0..2; MBEC (Intel's mode-based execute control)
 * splits X into X-supervisor (bit 2) and X-user (bit 10 in hardware, bit 3 here). IMMUTABLE
 * and FROZEN are software state of the core: IMMUTABLE pages refuse every later change of
 * their permissions; FROZEN pages are write-protected for the guest while the verifier
 * looks at a snapshot of them (freeze, snapshot, verify, apply, audit).
 */
import { MEM_ATTR } from '../../shared/abi.ts';
import type { AccessKind, AccessMode } from '../../shared/guest-cpu.ts';

/** Readable. */
export const EPT_R = 1 << 0;
/** Writable. */
export const EPT_W = 1 << 1;
/** Executable at CPL 0. */
export const EPT_XS = 1 << 2;
/** Executable at CPL 3 (MBEC). */
export const EPT_XU = 1 << 3;
/** No later change allowed until the VMM resets the VM. */
export const EPT_IMMUTABLE = 1 << 4;
/** Temporarily not writable: a verification of this page is in flight. */
export const EPT_FROZEN = 1 << 5;

/** R, W, Xs, Xu: the permission bits proper. */
export const EPT_RWX_MASK = EPT_R | EPT_W | EPT_XS | EPT_XU;
/** Permissions of a page nobody locked: RWX, as in Heki v2. */
export const EPT_DEFAULT = EPT_R | EPT_W | EPT_XS | EPT_XU;

/** The EPT bit an access needs. */
export function requiredBit(access: AccessKind, mode: AccessMode): number {
  if (access === 'read') return EPT_R;
  if (access === 'write') return EPT_W;
  return mode === 'kernel' ? EPT_XS : EPT_XU;
}

/** True when a page with `perms` allows the access. A FROZEN page refuses writes. */
export function permits(perms: number, access: AccessKind, mode: AccessMode): boolean {
  if (access === 'write' && (perms & EPT_FROZEN) !== 0) return false;
  return (perms & requiredBit(access, mode)) !== 0;
}

/**
 * An access (kind and privilege) as one number, the way hardware carries it with the request:
 * the low byte holds the EPT bits to test, the next byte the value they must have (the bit
 * the access needs set, FROZEN clear for a write). Computed once per access, not per frame,
 * so a check is one mask and one compare: {@link permitsMask}, `Ept.check`.
 */
export type AccessMask = number & { readonly __accessMask: true };

/** The {@link AccessMask} of an access. */
export function accessMask(access: AccessKind, mode: AccessMode): AccessMask {
  const need = requiredBit(access, mode);
  const test = access === 'write' ? need | EPT_FROZEN : need;
  return (test | (need << 8)) as AccessMask;
}

/** {@link permits} for an access given as its {@link AccessMask}; the same answer. */
export function permitsMask(perms: number, m: AccessMask): boolean {
  return (perms & m & 0xff) === m >>> 8;
}

/** Converts Heki MEM_ATTR bits to EPT bits. */
export function memAttrToEpt(attr: number): number {
  let p = 0;
  if (attr & MEM_ATTR.READ) p |= EPT_R;
  if (attr & MEM_ATTR.WRITE) p |= EPT_W;
  if (attr & MEM_ATTR.EXEC) p |= EPT_XS;
  if (attr & MEM_ATTR.EXEC_USER) p |= EPT_XU;
  if (attr & MEM_ATTR.IMMUTABLE) p |= EPT_IMMUTABLE;
  return p;
}

/** Converts EPT bits back to Heki MEM_ATTR bits (FROZEN has no ABI counterpart). */
export function eptToMemAttr(perms: number): number {
  let a = 0;
  if (perms & EPT_R) a |= MEM_ATTR.READ;
  if (perms & EPT_W) a |= MEM_ATTR.WRITE;
  if (perms & EPT_XS) a |= MEM_ATTR.EXEC;
  if (perms & EPT_XU) a |= MEM_ATTR.EXEC_USER;
  if (perms & EPT_IMMUTABLE) a |= MEM_ATTR.IMMUTABLE;
  return a;
}

/** `RWXxI-` style text: R, W, X (supervisor), x (user), I (immutable), F (frozen). */
export function eptString(perms: number): string {
  return (
    (perms & EPT_R ? 'R' : '-') +
    (perms & EPT_W ? 'W' : '-') +
    (perms & EPT_XS ? 'X' : '-') +
    (perms & EPT_XU ? 'x' : '-') +
    (perms & EPT_IMMUTABLE ? 'I' : '-') +
    (perms & EPT_FROZEN ? 'F' : '-')
  );
}
