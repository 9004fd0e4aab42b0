/**
 * Which hypervisor the guest runs on, from CPUID leaf 0x40000000 as Linux reads it:
 * "KVMKVMKVM\0\0\0" is KVM (arch/x86/kernel/kvm.c kvm_cpuid_base()), "Microsoft Hv" is
 * Hyper-V (arch/x86/kernel/cpu/mshyperv.c ms_hyperv_platform()).
 */
import { CPUID_LEAF, KVM_CPUID_SIGNATURE, hypervisorSignature } from '../../shared/x86/cpuid.ts';
import { HYPERV_CPUID_SIGNATURE } from '../../shared/hv-vsm-abi.ts';
import type { HypervisorKind } from '../../shared/hypervisor-kind.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';

/** The hypervisor CPUID 0x40000000 names, or undefined for none the guest knows. */
export function cpuidHypervisor(cpu: GuestCpu): HypervisorKind | undefined {
  const sig = hypervisorSignature(cpu.cpuid(CPUID_LEAF.KVM_SIGNATURE));
  if (sig === KVM_CPUID_SIGNATURE) return 'kvm';
  if (sig === HYPERV_CPUID_SIGNATURE) return 'hyperv';
  return undefined;
}
