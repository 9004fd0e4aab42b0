/**
 * PREEMPT_DYNAMIC on static calls (CONFIG_HAVE_PREEMPT_DYNAMIC_CALL): the five static calls
 * `sched_dynamic_update()` of Linux 6.1.192 kernel/sched/core.c points at their enabled or
 * disabled functions. The kernel does it while booting, from `setup_preempt_mode()` (a
 * `preempt=` on the command line, parsed in start_kernel) or from `preempt_dynamic_init()`
 * at the end of sched_init() with the config's default; both run after static_call_init()
 * and before arch_cpu_finalize_init() chooses the mitigations, so the return forms they
 * write are the early ones (`ret; int3` for a NULL trampoline, not the return thunk).
 */
import type { TouchupContext } from './context.ts';
import type { StaticCallState } from './static-call-init.ts';
import type { TextSpace } from './text-space.ts';

/** `preempt_dynamic_none`, `_voluntary`, `_full`. */
export type PreemptMode = 'none' | 'voluntary' | 'full';

/**
 * The mode the Debian 6.1 config boots with when the command line names none:
 * CONFIG_PREEMPT_VOLUNTARY=y (with CONFIG_PREEMPT_DYNAMIC=y) in
 * ../shared/fixtures/linux-6.1.0-56-amd64/config.
 */
export const CONFIG_PREEMPT_MODE: PreemptMode = 'voluntary';

/** Each call with its `_dynamic_enabled` and `_dynamic_disabled` function (null = NULL). */
export const PREEMPT_DYNAMIC_CALLS: readonly { readonly name: string; readonly enabled: string; readonly disabled: string | null }[] = Object.freeze([
  { name: 'cond_resched', enabled: '__cond_resched', disabled: '__static_call_return0' },
  { name: 'might_resched', enabled: '__cond_resched', disabled: '__static_call_return0' },
  // arch/x86/include/asm/preempt.h: the x86 thunks, NULL when disabled.
  { name: 'preempt_schedule', enabled: 'preempt_schedule_thunk', disabled: null },
  { name: 'preempt_schedule_notrace', enabled: 'preempt_schedule_notrace_thunk', disabled: null },
  // include/linux/entry-common.h
  { name: 'irqentry_exit_cond_resched', enabled: 'raw_irqentry_exit_cond_resched', disabled: null },
]);

/** Which calls each mode enables (the `switch (mode)` of sched_dynamic_update()). */
const ENABLED: Readonly<Record<PreemptMode, readonly string[]>> = {
  none: ['cond_resched'],
  voluntary: ['cond_resched', 'might_resched'],
  full: ['preempt_schedule', 'preempt_schedule_notrace', 'irqentry_exit_cond_resched'],
};

/**
 * The mode the command line asks for: every `preempt=` parameter runs setup_preempt_mode(),
 * so the last valid one wins; an unsupported value is ignored (a warning in the kernel);
 * none at all is the config's default.
 */
export function preemptModeOf(cmdline: string): PreemptMode {
  let mode: PreemptMode | undefined;
  for (const word of cmdline.split(/\s+/)) {
    if (!word.startsWith('preempt=')) continue;
    const v = word.slice('preempt='.length);
    if (v === 'none' || v === 'voluntary' || v === 'full') mode = v;
  }
  return mode ?? CONFIG_PREEMPT_MODE;
}

/** `sched_dynamic_update(mode)`: first every call enabled, then the mode's choice. Returns the addresses written. */
export function schedDynamicUpdate(space: TextSpace, ctx: TouchupContext, state: StaticCallState, mode: PreemptMode): bigint[] {
  const written: bigint[] = [];
  const set = (name: string, fn: string | null): void => {
    const key = ctx.symbols.symbol(`__SCK__${name}`);
    if (key === undefined) return;
    const func = fn === null ? null : ctx.symbols.symbol(fn);
    if (func === undefined) return;
    written.push(...state.update(space, ctx, key, func));
  };
  for (const c of PREEMPT_DYNAMIC_CALLS) set(c.name, c.enabled);
  for (const c of PREEMPT_DYNAMIC_CALLS) set(c.name, ENABLED[mode].includes(c.name) ? c.enabled : c.disabled);
  return written;
}
