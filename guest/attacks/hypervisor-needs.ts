/**
 * Which attacks of the catalogue a hypervisor's Heki ABI cannot express, and why: the
 * runner (checks/attacks.ts) reports such an attack on that hypervisor as not applicable
 * with the reason, never as stopped and never silently skipped. One table, so the catalogue's
 * attack files stay the same on every hypervisor (a parameter, not copies).
 *
 * An attack is listed only when its premise does not exist under that ABI: the interface it
 * abuses is absent (LVBS has no text-patch, set_memory or code-image call), or it speaks
 * the KVM hypercall ABI itself. Attacks through the guest's own paths (page tables, CR and
 * MSR writes, module loading, boot touch-ups, DMA) run on both.
 */
import type { HypervisorKind } from '../../shared/hypervisor-kind.ts';
import { VSM_CAPABILITIES } from '../heki/vsm-backend.ts';

const VSM = VSM_CAPABILITIES.missing;

const KVM_ABI = 'the attack issues KVM hypercalls itself (shared/abi.ts); a Hyper-V guest has only VTL calls';

/** Attack name -> why it does not apply, per hypervisor. KVM expresses every attack. */
export const NOT_APPLICABLE: Readonly<Record<HypervisorKind, Readonly<Record<string, string>>>> = {
  kvm: {},
  hyperv: {
    'ftrace-non-site': VSM.textPatch!,
    'ftrace-wrong-old-bytes': VSM.textPatch!,
    'ftrace-non-trampoline-target': VSM.textPatch!,
    'ftrace-freed-init-site': VSM.textPatch!,
    'jump-label-foreign-target': VSM.textPatch!,
    'kprobe-denied-site': VSM.textPatch!,
    'text-patch-outside-verified-text': VSM.textPatch!,
    'set-memory-x-on-data': VSM.setMemory!,
    'set-memory-rw-on-text': VSM.setMemory!,
    'flood-verifier': `${VSM.setMemory!} (the flood is of authenticated set_memory calls)`,
    'bpf-unsigned-jit': VSM.loadCode!,
    'bpf-jit-wrong-address': VSM.loadCode!,
    'bpf-jit-unsigned-tail': VSM.loadCode!,
    'relock-cr-weaker': `${VSM.crMask!}; a weaker mask cannot be asked for`,
    'unknown-hypercall': `${KVM_ABI}; unknown Hyper-V codes and VSM IDs: test/unit/hyperv-dispatch.test.ts`,
    'malformed-page-list': `${KVM_ABI}; after end of boot VTL1 refuses every PROTECT_MEMORY before reading its list (test/unit/hyperv-dispatch.test.ts)`,
    'protect-memory-unlock-text': `${KVM_ABI}; after end of boot VTL1 refuses every PROTECT_MEMORY (test/unit/hyperv-dispatch.test.ts)`,
    'protect-memory-widen-data-exec': `${KVM_ABI}; after end of boot VTL1 refuses every PROTECT_MEMORY (test/unit/hyperv-dispatch.test.ts)`,
    'vmm-reads-private-memory': `${KVM_ABI} (KVM_HC_MAP_GPA_RANGE); the Hyper-V personality has no host-visibility call`,
  },
};

/** Why `attack` does not apply on `hypervisor`, or undefined when it does. */
export function hypervisorGap(hypervisor: HypervisorKind, attack: string): string | undefined {
  return NOT_APPLICABLE[hypervisor][attack];
}
