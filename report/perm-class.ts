/**
 * How the report shows an EPT value: a colour class for the permission bits that matter to
 * a kernel (R, W, supervisor X), a hatching for IMMUTABLE, an outline for FROZEN, and words.
 */
import { EPT_FROZEN, EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS, EPT_XU, eptString } from '../hypervisor/ept/permissions.ts';

/** The colour classes, in legend order. */
export const PERM_CLASSES = ['rx', 'r', 'rw', 'rwx', 'x', 'none', 'unmapped'] as const;
/** A colour class. */
export type PermClass = (typeof PERM_CLASSES)[number];

/** What each class means, for the legend. */
export const PERM_LEGEND: Readonly<Record<PermClass, string>> = {
  rx: 'RX: code (read, execute, not writable)',
  r: 'R: read-only, not executable',
  rw: 'RW: data, not executable',
  rwx: 'RWX: writable and executable (not locked)',
  x: 'X or WX without R (unusual)',
  none: 'none: no access',
  unmapped: 'not mapped by the guest',
};

/** The colour class of an EPT value (`unmapped` when there is no frame). */
export function permClass(perms: number, mapped = true): PermClass {
  if (!mapped) return 'unmapped';
  const r = (perms & EPT_R) !== 0;
  const w = (perms & EPT_W) !== 0;
  const x = (perms & EPT_XS) !== 0;
  if (!r && !w && !x) return 'none';
  if (!r) return 'x';
  if (x) return w ? 'rwx' : 'rx';
  return w ? 'rw' : 'r';
}

/** The classes of an element showing `perms`: colour, plus `imm` and `frozen` when set. */
export function permClasses(perms: number, mapped = true): string {
  return ['run', `perm-${permClass(perms, mapped)}`, ...(perms & EPT_IMMUTABLE ? ['imm'] : []), ...(perms & EPT_FROZEN ? ['frozen'] : [])].join(' ');
}

/** Words for an EPT value: `RX, immutable (R-X--I-... )`. */
export function permWords(perms: number, mapped = true): string {
  if (!mapped) return 'not mapped';
  const c = permClass(perms).toUpperCase();
  const extra = [perms & EPT_IMMUTABLE ? 'immutable' : '', perms & EPT_FROZEN ? 'frozen' : '', perms & EPT_XU ? 'user-executable' : ''].filter(Boolean);
  return `${c === 'NONE' ? 'no access' : c}${extra.length ? `, ${extra.join(', ')}` : ''} (EPT ${eptString(perms)})`;
}
