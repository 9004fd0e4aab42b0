/**
 * What a simulated machine runs on at one moment, as one value: the VMM and core, the
 * verifier link, the audit log, the kernel images and the running guest kernel. A step that
 * changes what the machine is made of (a boot, a reboot, a kexec, a resume, a migration to a
 * new VMM) returns the next parts in its {@link StepResult}; nothing changes a machine's
 * parts behind its back.
 */
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import type { Vmm } from '../hypervisor/vmm/vmm.ts';
import type { VerifierLink } from '../hypervisor/verifier-link/verifier-link.ts';
import type { AuditLog } from '../hypervisor/audit/audit-log.ts';
import type { Ed25519KeyPair } from '../shared/crypto/ed25519.ts';
import type { GuestKernel } from '../guest/kernel/guest-kernel.ts';
import type { MachineHost } from './lifecycle/machine-host.ts';
import type { StepOutcome } from './machine-api.ts';

/** A machine's parts. */
export interface MachineParts {
  readonly vmm: Vmm;
  readonly link: VerifierLink;
  readonly audit: AuditLog;
  /** The image the guest runs (after a kexec: the new one): System.map lookups use it. */
  readonly image: KernelImage;
  /** The image of the VMM's boot kernel: what a reboot or a cold boot runs. */
  readonly bootImage: KernelImage;
  /** The running guest kernel; undefined while none runs (not booted, hibernated, stopped, reset). */
  readonly kernel: GuestKernel | undefined;
  /** The image of the crash kernel `kexec -p` loaded, which a panic boots. */
  readonly crashImage?: KernelImage;
  readonly memoryBytes: bigint;
  /** Signs BPF JIT images for `bpf-jit` steps (a stand-in for a BPF signing service). */
  readonly codeSigner: Ed25519KeyPair;
  /** Boot progress lines. */
  readonly log?: (line: string) => void;
  /** The host side a lifecycle step needs (machine/machine.ts keeps it); without it, lifecycle steps answer `error`. */
  readonly host?: MachineHost;
}

/** What a step did, and the parts the machine goes on with when the step changed them. */
export interface StepResult {
  readonly outcome: StepOutcome;
  readonly next?: MachineParts;
}

/** The same parts without a running guest kernel, running `image` next (default: the same). */
export function withoutKernel(p: MachineParts, image: KernelImage = p.image): MachineParts {
  return { ...p, kernel: undefined, image };
}
