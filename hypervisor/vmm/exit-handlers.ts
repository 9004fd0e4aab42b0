/**
 * The VMM's exit-handler table, like KVM's `kvm_vmx_exit_handlers[]`: one handler per exit
 * reason, checked for completeness by TypeScript. Each handler asks the policy for a
 * decision, applies its contract, logs, and returns the reaction the core must apply.
 *
 * Contracts (what each handler may return):
 * - `ept-violation`: `inject` (the guest takes #PF) or `stop`. Never `resume`: the EPT is
 *   mechanism, and a policy that answers `resume` is overruled to `inject` (noted in the log).
 * - `cr-write`, `msr-write`, `dt-write`: `resume` performs the write, `inject` raises #GP and
 *   changes nothing, `stop` stops the VM.
 * - `msr-read`: `resume` returns the value, `inject` raises #GP, `stop`.
 * - `heki-configure`: `resume` lets the core apply the request, `inject` refuses it
 *   (-KVM_EPERM), `stop`.
 * - `heki-denial`: `inject` (the guest gets #GP or -KVM_EPERM) or `stop`. Never `resume`:
 *   only a VMM reset lifts a pin or a lock, so `resume` is overruled to `inject`.
 * - `system-event`: `resume` accepts the event: the VMM records it for its main loop, which
 *   carries it out (reset, kexec, hibernate, ...), and the core parks the VM until then (no
 *   vCPU runs the old kernel again); the VMM overrules `resume` to `inject` when it cannot
 *   carry the event out (a kexec with nothing loaded). `inject` refuses: the guest goes on
 *   (the port write does nothing, KVM_HC_HEKI_KEXEC returns -KVM_EPERM). `stop`.
 * - `kexec-load`: `resume` stages the verified image in the VMM (or empties the slot);
 *   `inject` refuses it (-KVM_EPERM, nothing staged); `stop`.
 */
import type { ExitReason } from '../../shared/exit-reasons.ts';
import type { ExitOf, Reaction, VmExit } from '../exits/exit.ts';
import { DEFAULT_POLICY, type Decision, type VmmPolicy } from './policy.ts';
import type { VmmEventLog } from './event-log.ts';

/** What a handler needs. */
export interface ExitHandlerContext {
  readonly policy: VmmPolicy;
  readonly log: VmmEventLog;
  /** Side effects the VMM attaches to accepted configuration (e.g. pinning MSRs on lock). */
  readonly onConfigureAccepted?: (exit: ExitOf<'heki-configure'>) => void;
  /**
   * Records an accepted system event for the VMM's main loop; returns why the VMM cannot
   * carry it out (the handler then refuses it), or undefined.
   */
  readonly onSystemEvent?: (exit: ExitOf<'system-event'>) => string | undefined;
  /** Stages (or unstages) an accepted kexec image. */
  readonly onKexecLoad?: (exit: ExitOf<'kexec-load'>) => void;
  /** Sees every handled exit with what was done (the VM's observer); must not throw. */
  readonly onHandled?: (exit: VmExit, action: Decision['action'], note: string | undefined) => void;
}

type Handler<R extends ExitReason> = (ctx: ExitHandlerContext, exit: ExitOf<R>) => Reaction;

function decide<R extends ExitReason>(ctx: ExitHandlerContext, exit: ExitOf<R>): Decision {
  const fromPolicy = ctx.policy[exit.reason] as ((e: ExitOf<R>) => Decision) | undefined;
  const fallback = DEFAULT_POLICY[exit.reason] as (e: ExitOf<R>) => Decision;
  return (fromPolicy ?? fallback)(exit);
}

function finish(ctx: ExitHandlerContext, exit: VmExit, d: Decision, note?: string): Reaction {
  if (d.log === false) ctx.log.unlogged++;
  else ctx.log.append(exit, d.action, note ?? d.reason);
  ctx.onHandled?.(exit, d.action, note ?? d.reason);
  if (d.action === 'stop') return { action: 'stop', reason: d.reason ?? `the VMM stopped the VM on a ${exit.reason} exit` };
  return { action: d.action };
}

/** Handlers whose exits can never be resumed: `resume` becomes `inject`. */
function noResume<R extends 'ept-violation' | 'heki-denial'>(ctx: ExitHandlerContext, exit: ExitOf<R>): Reaction {
  const d = decide(ctx, exit);
  if (d.action === 'resume') {
    const reason: ExitReason = (exit as VmExit).reason;
    return finish(ctx, exit, { ...d, action: 'inject', log: true }, `policy answered resume to ${reason}; overruled to inject`);
  }
  return finish(ctx, exit, d);
}

function plain<R extends ExitReason>(ctx: ExitHandlerContext, exit: ExitOf<R>): Reaction {
  return finish(ctx, exit, decide(ctx, exit));
}

/** The table. */
export const EXIT_HANDLERS = {
  'ept-violation': noResume,
  'heki-denial': noResume,
  'cr-write': plain,
  'msr-write': plain,
  'msr-read': plain,
  'dt-write': plain,
  'heki-configure': (ctx, exit) => {
    const d = decide(ctx, exit);
    const r = finish(ctx, exit, d);
    if (r.action === 'resume') ctx.onConfigureAccepted?.(exit);
    return r;
  },
  'system-event': (ctx, exit) => {
    const d = decide(ctx, exit);
    if (d.action !== 'resume') return finish(ctx, exit, d);
    const cannot = ctx.onSystemEvent?.(exit);
    if (cannot !== undefined) return finish(ctx, exit, { ...d, action: 'inject', log: true }, cannot);
    return finish(ctx, exit, d);
  },
  'kexec-load': (ctx, exit) => {
    const d = decide(ctx, exit);
    const r = finish(ctx, exit, d);
    if (r.action === 'resume') ctx.onKexecLoad?.(exit);
    return r;
  },
} satisfies { [R in ExitReason]: Handler<R> };

/** Dispatches one exit through the table. */
export function handleExit(ctx: ExitHandlerContext, exit: VmExit): Reaction {
  const handler = EXIT_HANDLERS[exit.reason] as Handler<ExitReason>;
  return handler(ctx, exit as ExitOf<ExitReason>);
}
