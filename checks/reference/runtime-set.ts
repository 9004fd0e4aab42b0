/**
 * Sets the runtime state a real boot's own init code left, read off its dump
 * (runtime-state.ts), through the guest's ordinary authenticated paths: static_key_enable /
 * static_key_disable (guest/patching/jump-labels.ts) and static_call_update
 * (guest/patching/static-calls.ts), the same ones the scenario steps `static-key` and
 * `static-call` use, so the verifier checks every byte they write as it checks a running
 * kernel's.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import type { GuestKernel } from '../../guest/kernel/guest-kernel.ts';
import { changedKeys, changedStaticCalls, jumpKeyStates, staticCallStates, type JumpEntryRef } from './runtime-state.ts';

/** What was set, and what could not be. */
export interface RuntimeStateReport {
  /** Static keys set (enabled or disabled) through the jump-label path. */
  readonly staticKeys: number;
  /** Static calls updated through the static-call path. */
  readonly staticCalls: number;
  /** Keys whose real sites disagree, unreadable sites, and refused updates, each named. */
  readonly problems: readonly string[];
}

/** Where the real bytes come from and what to leave alone. */
export interface RuntimeStateSource {
  /** The real bytes at `va` (undefined outside the dump). */
  readonly real: (va: bigint, len: number) => Uint8Array | undefined;
  /** `__x86_return_thunk`: a trampoline jumping there returns (NULL). */
  readonly returnThunk: bigint | undefined;
  /** Only static keys (module text: its static calls are not the guest's to update). */
  readonly jumpOnly?: boolean;
  /** Keys an earlier pass read from other text: their state is decided. */
  readonly except?: ReadonlySet<bigint>;
}

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** Sets the state; `decided` is every key whose state the dump showed. */
export async function setRuntimeState(k: GuestKernel, src: RuntimeStateSource): Promise<RuntimeStateReport & { decided: ReadonlySet<bigint> }> {
  const problems: string[] = [];
  const guest = (va: bigint, len: number): Uint8Array | undefined => {
    const r = k.cpu.read(gvaFromRegister(va), len);
    return r.ok ? r.value : undefined;
  };
  const entries: JumpEntryRef[] = [];
  for (const key of k.jumpLabels.keys()) {
    if (src.except?.has(key)) continue;
    for (const e of k.jumpLabels.entries(key)) if (src.real(e.site, e.length)) entries.push(e);
  }
  const real = jumpKeyStates(entries, src.real);
  for (const i of real.inconsistent) problems.push(`static key ${hex(i.key)}: its real sites disagree (${i.sites.slice(0, 3).map(hex).join(', ')})`);
  for (const s of real.unreadable) problems.push(`jump label ${hex(s)}: the real bytes are neither the NOP nor a jump`);
  const booted = jumpKeyStates(entries, guest);
  let staticKeys = 0;
  for (const [key, enabled] of changedKeys(booted, real)) {
    if (real.inconsistent.some((i) => i.key === key)) continue;
    const r = await k.jumpLabels.set(key, enabled);
    if (r.ok) staticKeys++;
    else problems.push(`static_key_${enabled ? 'enable' : 'disable'}(${hex(key)}): ${r.reason}`);
  }
  let staticCalls = 0;
  if (!src.jumpOnly) {
    const keys = k.staticCalls.keys().flatMap((key) => {
      const info = k.staticCalls.key(key);
      return info && src.real(info.trampoline, 5) ? [info] : [];
    });
    const realCalls = staticCallStates(keys, src.real, src.returnThunk);
    for (const t of realCalls.unreadable) problems.push(`static call trampoline ${hex(t)}: the real bytes are neither a jmp nor a return`);
    for (const [key, func] of changedStaticCalls(staticCallStates(keys, guest, src.returnThunk), realCalls)) {
      const r = await k.staticCalls.update(key, func);
      if (r.ok) staticCalls++;
      else problems.push(`static_call_update(__SCK__${k.staticCalls.key(key)?.name ?? hex(key)}, ${func === null ? 'NULL' : hex(func)}): ${r.reason}`);
    }
  }
  return { staticKeys, staticCalls, problems, decided: new Set(real.enabled.keys()) };
}
