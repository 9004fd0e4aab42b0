/**
 * The verifier's per-VM state as plain data: what `exportVm` hands the VMM for a hibernation
 * image or a migration snapshot, and what a `restore-state` request brings back. The VMM
 * carries it without looking inside; the lifecycle plugin (plugins/lifecycle.ts) takes it
 * back only from an image a `vmm` key of the keyring signed for this VM, and checks its shape
 * here before a single field is used.
 */
import type { VerifiedModule, VmState } from './plugin-api.ts';

/** Version of {@link ExportedVmState}. */
export const EXPORTED_VM_STATE_VERSION = 1;

/** A VM's verifier state (the fields of {@link VmState}, and the text of its own manifest). */
export interface ExportedVmState {
  readonly version: number;
  readonly bootVerified: boolean;
  readonly modules: ReadonlyMap<string, VerifiedModule>;
  readonly codeImages: VmState['codeImages'];
  /** Each plugin's private state, as the plugin left it (structured-clone data). */
  readonly pluginState: ReadonlyMap<string, unknown>;
  /** The signed manifest text of the kernel the VM runs, when it is not the verifier's own. */
  readonly manifest: string | undefined;
}

const isMap = (v: unknown): v is Map<unknown, unknown> => v instanceof Map;
const isBig = (v: unknown): v is bigint => typeof v === 'bigint';
const HEX64 = /^[0-9a-f]{64}$/;

function checkRanges(v: unknown, where: string, withPerm: boolean): string | undefined {
  if (!Array.isArray(v)) return `${where} must be a list`;
  for (const [i, r] of v.entries()) {
    const x = r as Record<string, unknown> | null;
    if (typeof x !== 'object' || x === null || !isBig(x.start) || !isBig(x.end) || x.start > x.end) return `${where}[${i}] must be {start, end} with start <= end`;
    if (withPerm && (typeof x.permissions !== 'number' || !Number.isInteger(x.permissions))) return `${where}[${i}].permissions must be an integer`;
  }
  return undefined;
}

function checkModule(name: unknown, m: unknown): string | undefined {
  if (typeof name !== 'string' || name === '') return 'a module name is not a non-empty string';
  const where = `module ${name}`;
  const x = m as Record<string, unknown> | null;
  if (typeof x !== 'object' || x === null || x.name !== name) return `${where}: the record is not an object of that name`;
  if (!isMap(x.exports) || ![...x.exports].every(([k, a]) => typeof k === 'string' && isBig(a))) return `${where}: exports must map names to addresses`;
  if (!(x.mcountSites instanceof Set) || ![...x.mcountSites].every(isBig)) return `${where}: mcountSites must be a set of addresses`;
  if (!isMap(x.jumpEntries)) return `${where}: jumpEntries must be a map`;
  for (const [site, e] of x.jumpEntries) {
    const j = e as Record<string, unknown> | null;
    if (!isBig(site) || typeof j !== 'object' || j === null || !isBig(j.target) || (j.len !== 2 && j.len !== 5)) return `${where}: a jump entry is malformed`;
  }
  const r = checkRanges(x.textRanges, `${where}: textRanges`, false) ?? checkRanges(x.ranges, `${where}: ranges`, true);
  if (r) return r;
  if (!isMap(x.textPageHashes) || ![...x.textPageHashes].every(([k, h]) => isBig(k) && typeof h === 'string' && HEX64.test(h))) return `${where}: textPageHashes must map pages to SHA-256 hex`;
  if (x.functions !== undefined && (!(x.functions instanceof Set) || ![...x.functions].every(isBig))) return `${where}: functions must be a set of addresses`;
  if (x.smpLocks !== undefined && (!(x.smpLocks instanceof Set) || ![...x.smpLocks].every(isBig))) return `${where}: smpLocks must be a set of addresses`;
  if (x.init !== undefined) {
    const i = x.init as Record<string, unknown> | null;
    const indexes = (v: unknown): boolean => Array.isArray(v) && v.every((n) => Number.isInteger(n) && (n as number) >= 0 && (n as number) <= 0xffff);
    if (typeof i !== 'object' || i === null || !indexes(i.sections) || !indexes(i.roAfterInit)) return `${where}: init must hold section indexes (sections, roAfterInit)`;
    const e = checkRanges(i.ranges, `${where}: init.ranges`, false) ?? checkRanges(i.roAfterInitRanges, `${where}: init.roAfterInitRanges`, false);
    if (e) return e;
  }
  return undefined;
}

/** Checks the shape of an exported state of unknown origin; names the first problem. */
export function validateExportedVmState(v: unknown): { ok: true; state: ExportedVmState } | { ok: false; error: string } {
  const bad = (error: string) => ({ ok: false as const, error });
  const x = v as Record<string, unknown> | null;
  if (typeof x !== 'object' || x === null) return bad('the verifier state is not an object');
  if (x.version !== EXPORTED_VM_STATE_VERSION) return bad(`verifier state version ${String(x.version)} is not ${EXPORTED_VM_STATE_VERSION}`);
  if (typeof x.bootVerified !== 'boolean') return bad('bootVerified must be a boolean');
  if (!isMap(x.modules)) return bad('modules must be a map');
  for (const [name, m] of x.modules) {
    const e = checkModule(name, m);
    if (e) return bad(e);
  }
  if (!isMap(x.codeImages)) return bad('codeImages must be a map');
  for (const [addr, c] of x.codeImages) {
    const y = c as Record<string, unknown> | null;
    if (!isBig(addr) || typeof y !== 'object' || y === null || !isBig(y.end) || typeof y.name !== 'string' || typeof y.sha256 !== 'string' || !isMap(y.pageHashes)) {
      return bad('a code image record is malformed');
    }
  }
  if (!isMap(x.pluginState) || ![...x.pluginState.keys()].every((k) => typeof k === 'string')) return bad('pluginState must map plugin names to state');
  if (x.manifest !== undefined && typeof x.manifest !== 'string') return bad('manifest must be the manifest text or absent');
  return { ok: true, state: x as unknown as ExportedVmState };
}

/**
 * Replaces `target`'s contents with `state` (the plugin's commit, after the image checked).
 * `kernel` is the already checked manifest of `state.manifest`, when it has one.
 */
export function applyExportedVmState(target: VmState, state: ExportedVmState, kernel: VmState['kernel']): void {
  target.modules.clear();
  for (const [k, m] of state.modules) target.modules.set(k, m);
  target.codeImages.clear();
  for (const [k, c] of state.codeImages) target.codeImages.set(k, c);
  target.pluginState.clear();
  for (const [k, p] of state.pluginState) target.pluginState.set(k, p);
  target.bootVerified = state.bootVerified;
  target.kernel = kernel;
}
