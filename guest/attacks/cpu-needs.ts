/**
 * Whether a CPU model meets an attack's {@link CpuModelNeeds}, and the needs in words: the
 * runner (checks/attacks.ts) asks before it boots anything, so an attack that cannot apply
 * to the VMM's model (return thunks on a CPU without X86_FEATURE_RETHUNK, lock prefixes on a
 * one-CPU guest whose boot patched them away) is reported as not applicable, saying why.
 */
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import { featureLabel, hasMitigation, type MitigationFeature } from '../../shared/x86/cpu-features.ts';
import { bootPatchesToUp } from '../../shared/x86/touchups/smp-locks.ts';
import type { CpuModelNeeds } from './attack.ts';

/** The part of a model the needs read. */
export type CpuNeedsModel = Pick<CpuModel, 'capabilities' | 'presentCpus' | 'cmdline'>;

/** Why `model` does not meet `needs`, or undefined when it does. */
export function unmetCpuNeeds(model: CpuNeedsModel, needs: CpuModelNeeds): string | undefined {
  const missing = (needs.features ?? []).filter((f) => !hasMitigation(model, f));
  if (missing.length) return `it has no ${missing.map(featureLabel).join(', no ')}`;
  if (needs.anyOf?.length && !needs.anyOf.some((f) => hasMitigation(model, f))) return `it has none of ${needs.anyOf.map(featureLabel).join(', ')}`;
  if (needs.lacksAnyOf?.length && needs.lacksAnyOf.every((f) => hasMitigation(model, f)))
    return `it has every one of ${needs.lacksAnyOf.map(featureLabel).join(', ')}`;
  if (needs.smp && bootPatchesToUp({ cpu: model }))
    return `it has ${model.presentCpus} CPU present, so boot patches the lock prefixes to UP (no SMP lock prefix to strip)`;
  return undefined;
}

function featureList(names: readonly MitigationFeature[]): string {
  return names.length > 4 ? `${names.slice(0, 3).map(featureLabel).join(', ')}, ... (${names.length} in all)` : names.map(featureLabel).join(', ');
}

/** The needs in words, for `heki attacks --list`: `a CPU model with X86_FEATURE_RETHUNK`. */
export function describeCpuNeeds(needs: CpuModelNeeds): string {
  const parts: string[] = [];
  if (needs.features?.length) parts.push(`with ${needs.features.map(featureLabel).join(' and ')}`);
  if (needs.anyOf?.length) parts.push(`with one of the mitigations ${featureList(needs.anyOf)}`);
  if (needs.lacksAnyOf?.length) parts.push(`lacking one of the mitigations ${featureList(needs.lacksAnyOf)}`);
  if (needs.smp) parts.push('with more than one CPU present (SMP lock prefixes kept)');
  return `a CPU model ${parts.join(', ')}`;
}
