/**
 * Which demo steps the machine's hypervisor ABI cannot carry out, and why: on Hyper-V VSM
 * (LVBS) a step that needs an authenticated text patch, code image or set_memory widening
 * cannot be allowed, whatever the verifier says. `heki demo --hypervisor hyperv` shows such a
 * step as n/a with the reason (guest/heki/vsm-backend.ts VSM_CAPABILITIES) instead of a failure.
 */
import type { StepKind } from '../../scenario/scenario.ts';
import type { HypervisorKind } from '../../shared/hypervisor-kind.ts';
import { VSM_CAPABILITIES } from '../../guest/heki/vsm-backend.ts';
import type { HekiGap } from '../../guest/heki/capabilities.ts';

const STEP_GAPS: Partial<Record<StepKind, HekiGap>> = {
  ftrace: 'textPatch',
  'jump-label': 'textPatch',
  'static-call': 'textPatch',
  'text-poke': 'textPatch',
  kprobe: 'textPatch',
  'bpf-jit': 'loadCode',
  'set-memory': 'setMemory',
};

/**
 * Why a step of kind `op` that expects `expected` cannot succeed on `hypervisor`, or
 * undefined. Only steps expected to be allowed: a refusal the step expects is still checked.
 */
export function stepGap(hypervisor: HypervisorKind | undefined, op: StepKind, expected: string | null): string | undefined {
  if (hypervisor !== 'hyperv' || expected === 'denied' || expected === 'error') return undefined;
  const gap = STEP_GAPS[op];
  return gap ? VSM_CAPABILITIES.missing[gap] : undefined;
}
