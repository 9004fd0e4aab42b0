/**
 * The guest's CPU detection: what early_cpu_init()/identify_boot_cpu() leave in
 * `boot_cpu_data` and what setup_arch() takes as `boot_command_line`, learnt the only way a
 * guest can, through its vCPU's CPUID (shared/x86/cpuid.ts says which leaves; the simulator's
 * paravirtual leaves carry the capability words the real kernel computes from CPUID, its
 * bug tables and the command line, and the command line itself: docs/hypercalls.md).
 *
 * TRUST: the guest believes its CPU, as a real kernel does; nothing here reaches the verifier,
 * which gets the model from the VMM.
 */
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import { decodeCpuid, type CpuView } from '../../shared/x86/cpuid.ts';
import type { Result } from '../../shared/result.ts';

export type { CpuView } from '../../shared/x86/cpuid.ts';

/**
 * The guest's view of its CPU model (every field of a CpuModel but its name), or why the
 * vCPU's CPUID does not describe one.
 */
export function detectCpu(cpu: GuestCpu): Result<CpuView, string> {
  return decodeCpuid((leaf, subleaf) => cpu.cpuid(leaf, subleaf));
}
