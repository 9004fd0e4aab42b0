/**
 * Picks the guest's Heki backend from CPUID leaf 0x40000000, as Linux picks its hypervisor
 * platform: "KVMKVMKVM\0\0\0" is KVM (arch/x86/kernel/kvm.c kvm_cpuid_base()), "Microsoft Hv"
 * is Hyper-V (arch/x86/kernel/cpu/mshyperv.c ms_hyperv_platform()). The guest learns the
 * hypervisor only this way; the machine option that chose it is the VMM's.
 */
import { cpuidHypervisor } from './cpuid-hypervisor.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { HekiHypervisor } from './hypervisor.ts';
import type { Scratch } from './scratch.ts';
import { kvmHekiBackend } from './kvm-backend.ts';
import { vsmHekiBackend } from './vsm-backend.ts';

/**
 * The backend for the hypervisor this vCPU runs on. On an unknown one it is the KVM backend,
 * whose detect() then finds no Heki, so the kernel boots unprotected and says so.
 */
export function selectHekiBackend(cpu: GuestCpu, scratch: Scratch): HekiHypervisor {
  return cpuidHypervisor(cpu) === 'hyperv' ? vsmHekiBackend(cpu, scratch) : kvmHekiBackend(cpu, scratch);
}
