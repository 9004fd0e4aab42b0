/**
 * Which hypervisor a machine runs on: KVM with the Heki hypercalls (shared/abi.ts), or
 * Hyper-V's VSM with the LVBS VTL-call ABI (shared/hv-vsm-abi.ts). The VMM chooses it (a
 * machine option); the guest learns it only from CPUID 0x40000000, as Linux does.
 */
import { type Result, err, ok } from './result.ts';

/** The hypervisors a machine can run on. */
export const HYPERVISOR_KINDS = ['kvm', 'hyperv'] as const;

/** One of {@link HYPERVISOR_KINDS}. */
export type HypervisorKind = (typeof HYPERVISOR_KINDS)[number];

/** The default: KVM. */
export const DEFAULT_HYPERVISOR: HypervisorKind = 'kvm';

/** Parses a user's `kvm` / `hyperv`; the error names the allowed values. */
export function parseHypervisorKind(value: unknown): Result<HypervisorKind, string> {
  if (typeof value === 'string' && (HYPERVISOR_KINDS as readonly string[]).includes(value)) return ok(value as HypervisorKind);
  return err(`hypervisor must be one of ${HYPERVISOR_KINDS.join(', ')}, got ${JSON.stringify(value)}`);
}
