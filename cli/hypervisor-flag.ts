/**
 * `--hypervisor kvm|hyperv` of the commands that boot a machine: which hypervisor the VM runs
 * on (shared/hypervisor-kind.ts; default kvm). Checked before any machine starts, so a bad
 * value is exit 2 naming the allowed ones.
 */
import { UsageError } from './args.ts';
import { DEFAULT_HYPERVISOR, HYPERVISOR_KINDS, parseHypervisorKind, type HypervisorKind } from '../shared/hypervisor-kind.ts';

/** The flag's parseFlags spec. */
export const HYPERVISOR_FLAG = { hypervisor: { type: 'string' } } as const;

/** The flag's line in `--help`. */
export const HYPERVISOR_FLAG_USAGE = `  --hypervisor <kind>     the hypervisor: ${HYPERVISOR_KINDS.join(' or ')} (default ${DEFAULT_HYPERVISOR}); hyperv is
                          Hyper-V VSM with the LVBS VTL-call ABI (docs/hypervisors.md)
`;

/** The hypervisor `--hypervisor` names, or undefined when absent. Throws UsageError (exit 2). */
export function hypervisorFlag(value: string | undefined): HypervisorKind | undefined {
  if (value === undefined) return undefined;
  const h = parseHypervisorKind(value);
  if (!h.ok) throw new UsageError(`--hypervisor: ${h.error}`);
  return h.value;
}
