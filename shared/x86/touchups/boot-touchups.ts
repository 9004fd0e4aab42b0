/**
 * The kernel's boot-time text touch-ups in Linux 6.1.192's order, applied to a
 * {@link TextSpace}. Both the guest (on a copy of its own text, before it writes the result
 * through its vCPU) and the verifier (to predict the end state from the signed manifest and
 * the VMM's CPU model) run this one function.
 *
 * The order is the source's, not the comment in alternative_instructions(): x86's
 * setup_arch() runs jump_label_init() and static_call_init() (arch/x86/kernel/setup.c),
 * start_kernel() runs ftrace_init() (init/main.c), and only arch_cpu_finalize_init() runs
 * alternative_instructions() (arch/x86/kernel/cpu/common.c), after cpu_select_mitigations():
 * 1. jump_label_init(): on x86 there is no arch_jump_label_transform_static(), so the file's
 *    NOP or jump stays at every `__jump_table` site (nothing written);
 * 2. static_call_init(): inline sites to their key's function, with the early CPU words;
 * 3. ftrace_init(): every `__mcount_loc` site that calls `__fentry__` becomes NOP5;
 * 4. sched_dynamic_update() for the PREEMPT_DYNAMIC mode (`preempt=` or the config's), with
 *    the early CPU words too;
 * 5. alternative_instructions(): paravirt, retpolines, return thunks, alternatives, then the
 *    SMP lock prefixes to UP when one CPU is present.
 */
import { type TouchupContext } from './context.ts';
import { applyAlternatives } from './alternatives.ts';
import { applyParavirt } from './paravirt.ts';
import { applyRetpolines, applyReturns } from './returns.ts';
import { DS_PREFIX, LOCK_PREFIX, bootPatchesToUp, rewriteLockPrefixes } from './smp-locks.ts';
import { StaticCallState, earlyContext, staticCallInit } from './static-call-init.ts';
import { preemptModeOf, schedDynamicUpdate, type PreemptMode } from './preempt-dynamic.ts';
import type { TouchupTables } from './tables.ts';
import { type TextSpace, readS32 } from './text-space.ts';
import { X86_NOPS } from './nops.ts';
import { reportProgress } from '../../progress.ts';

/** ftrace's view of the mcount sites: where they are and what they must call in the file. */
export interface FtraceSites {
  readonly sites: readonly bigint[];
  /** `__fentry__`. */
  readonly fentry: bigint;
}

/** What {@link applyBootTouchups} did, by pass. */
export interface BootTouchupReport {
  readonly staticCallSites: number;
  readonly ftraceNops: number;
  /** The PREEMPT_DYNAMIC mode and the addresses its static call updates wrote. */
  readonly preemptMode: PreemptMode;
  readonly preemptWrites: number;
  /** Whether the lock prefixes were patched to UP. */
  readonly uniprocessor: boolean;
  readonly lockPrefixesUp: number;
}

/**
 * `ftrace_init()` -> `ftrace_make_nop()`: a site holding `call __fentry__` becomes NOP5; one
 * that holds anything else is left (the kernel refuses to patch it and disables ftrace).
 */
export function ftraceInitNops(space: TextSpace, ftrace: FtraceSites): number {
  let n = 0;
  const nop = Uint8Array.from(X86_NOPS[5]!);
  for (const addr of ftrace.sites) {
    const at = space.locate(addr, 5);
    if (!at) continue;
    const b = at.region.bytes;
    if (b[at.offset] !== 0xe8) continue;
    if (addr + 5n + BigInt(readS32(b, at.offset + 1)) !== ftrace.fentry) continue;
    b.set(nop, at.offset);
    n++;
  }
  return n;
}

/** Runs the boot touch-ups on `space`; `text` is `[_text, _etext)`, the range whose lock prefixes are patched. */
export function applyBootTouchups(
  space: TextSpace,
  tables: TouchupTables,
  ftrace: FtraceSites,
  text: { start: bigint; end: bigint },
  ctx: TouchupContext,
): BootTouchupReport {
  // PROGRESS: one report per pass (each is milliseconds of work), for the verifier's
  // watchdog when the verifier predicts the end state (shared/progress.ts).
  const early = earlyContext(ctx);
  const state = new StaticCallState(ctx, tables.staticCalls);
  const staticCallSites = staticCallInit(space, tables.staticCalls, early);
  reportProgress();
  const ftraceNops = ftraceInitNops(space, ftrace);
  reportProgress();
  const preemptMode = preemptModeOf(ctx.cpu.cmdline);
  const preemptWrites = schedDynamicUpdate(space, early, state, preemptMode).length;
  applyParavirt(space, tables.paravirt, ctx);
  reportProgress();
  applyRetpolines(space, tables.retpolines, ctx);
  reportProgress();
  applyReturns(space, tables.returns, ctx);
  reportProgress();
  applyAlternatives(space, tables.alternatives, ctx);
  reportProgress();
  const uniprocessor = bootPatchesToUp(ctx);
  const lockPrefixesUp = uniprocessor ? rewriteLockPrefixes(space, tables.smpLocks, text.start, text.end, LOCK_PREFIX, DS_PREFIX).length : 0;
  reportProgress();
  return { staticCallSites, ftraceNops, preemptMode, preemptWrites, uniprocessor, lockPrefixesUp };
}
