/**
 * The state of the kernel's static keys and static calls as the verifier knows it: read off
 * the text it verified at the end of boot, and moved by every jump-label and static-call
 * patch it allowed since. A module load depends on it (jump_label_add_module() and
 * static_call_add_module() set the module's sites to their keys' current state), and the
 * verifier predicts those bytes from this record, never from the guest's word.
 *
 * Kept in the VM's plugin state under the kernel-text plugin's name (it is that plugin's
 * record of the verified text), so hibernation images and migrations carry it.
 *
 * INVARIANT: only commit hooks of allowed verdicts change it (kernel-text, jump-label,
 * static-call), so it always describes text the core applied.
 */
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import { classifyJumpSite } from '../../shared/kernel-image/jump-table.ts';
import { returnThunkSet, trampolineFunc } from '../../shared/x86/touchups/static-call-init.ts';
import type { KernelManifest } from '../manifest.ts';
import type { PluginContext } from '../plugin-api.ts';
import { manifestTouchupContext } from './kernel-text-prediction.ts';

/** The plugin-state slot (the kernel-text plugin's). */
export const KEY_STATE_SLOT = 'kernel-text';

/** Static keys' states and static calls' functions of the kernel. */
export interface KernelKeyState {
  readonly jump: Map<bigint, boolean>;
  readonly calls: Map<bigint, bigint | null>;
}

function state(ctx: PluginContext): KernelKeyState | undefined {
  const s = ctx.vm.pluginState.get(KEY_STATE_SLOT) as KernelKeyState | undefined;
  return s && s.jump instanceof Map && s.calls instanceof Map ? s : undefined;
}

/** The recorded state, once the boot text was verified. */
export function kernelKeyState(ctx: PluginContext): KernelKeyState | undefined {
  return state(ctx);
}

function thunks(m: KernelManifest, model: CpuModel | undefined): Set<bigint> {
  const c = model ? manifestTouchupContext(m, model) : undefined;
  return c ? returnThunkSet(c) : new Set(m.staticCalls.returnThunk !== undefined ? [m.staticCalls.returnThunk] : []);
}

/** Records the key states of the verified boot `text` at `addr` (the kernel-text commit). */
export function recordBootKeys(ctx: PluginContext, m: KernelManifest, addr: bigint, text: Uint8Array): void {
  const at = (site: bigint, len: number): Uint8Array | undefined => {
    const off = site - addr;
    return off >= 0n && off + BigInt(len) <= BigInt(text.length) ? text.subarray(Number(off), Number(off) + len) : undefined;
  };
  const jump = new Map<bigint, boolean>();
  for (const [site, e] of m.jumpEntries) {
    if (e.branch === undefined || jump.has(e.key)) continue;
    const b = at(site, e.len);
    const c = b && classifyJumpSite(site, b);
    if (c) jump.set(e.key, (c.kind === 'jmp8' || c.kind === 'jmp32') !== e.branch);
  }
  const calls = new Map<bigint, bigint | null>();
  const rt = thunks(m, ctx.vm.cpuModel);
  for (const [key, info] of m.staticCalls.keys) {
    const b = at(info.trampoline, 5);
    const f = b && trampolineFunc(info.trampoline, b, rt);
    if (f !== undefined) calls.set(key, f);
  }
  ctx.vm.pluginState.set(KEY_STATE_SLOT, { jump, calls } satisfies KernelKeyState);
}

/** Moves the record with an allowed patch at `site` (a jump-label site or a static call trampoline). */
export function notePatch(ctx: PluginContext, m: KernelManifest, kind: string, site: bigint, newBytes: Uint8Array): void {
  const s = state(ctx);
  if (!s) return;
  if (kind === 'jump-label') {
    const e = m.jumpEntries.get(site);
    const c = classifyJumpSite(site, newBytes);
    if (e && e.branch !== undefined && c) s.jump.set(e.key, (c.kind === 'jmp8' || c.kind === 'jmp32') !== e.branch);
  } else if (kind === 'static-call') {
    const key = m.staticCalls.trampolines.get(site);
    if (key === undefined) return;
    const f = trampolineFunc(site, newBytes, thunks(m, ctx.vm.cpuModel));
    if (f !== undefined) s.calls.set(key, f);
  }
}
