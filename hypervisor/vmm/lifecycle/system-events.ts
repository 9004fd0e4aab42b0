/**
 * The VMM's main loop for lifecycle events: after a `system-event` exit the VMM accepted
 * (the VM is parked), {@link carryOutSystemEvent} does what the event asks. Policy lives here,
 * in the VMM; the core only parks the VM and, on the VMM's word, resets it.
 *
 * - `reset`: a cold reset (the paravirtual CR-pinning series' rule: pins are cleared on
 *   reset, and only then): the core clears pins, EPT locks, filters, exit masks and the
 *   authenticator's records, and RAM; the verifier forgets the VM; the VMM loads its boot
 *   kernel again. The guest then boots from scratch and locks itself anew.
 * - `kexec`: the same reset, into the kexec kernel the VMM staged after the verifier allowed
 *   it; the verifier is told the new kernel's manifest (`kernel-manifest`, checked again) and
 *   the core the new kernel's regions before anything of it runs.
 * - `crash`: into the staged crash kernel, like kexec; with none staged the VM stops (QEMU's
 *   default on a guest panic is to pause it).
 * - `shutdown`: the VM stops (powered off).
 * - `hibernate`: hibernate.ts.
 *
 * Every event carried out is one `lifecycle` audit record. A step that fails stops the VM
 * (fail closed): it never runs a kernel that was not checked.
 */
import { type Result, err, ok } from '../../../shared/result.ts';
import type { SystemEventType } from '../../../shared/platform-io.ts';
import type { AuditValue } from '../../../shared/audit-sink.ts';
import type { ExitOf, KexecSlot } from '../../exits/exit.ts';
import type { Vmm } from '../vmm.ts';
import { bootKernelFromBzImage, type BootKernel } from './boot-kernel.ts';
import { hibernate } from './hibernate.ts';
import { auditLifecycle } from './lifecycle-audit.ts';

/** What carrying out an event did. */
export type LifecycleOutcome =
  /** The VM was reset and its boot kernel loaded: the guest boots again. */
  | { readonly kind: 'rebooted'; readonly type: SystemEventType; readonly kernel: string; readonly detail: string }
  /** The VM was reset into a staged kexec or crash kernel: the guest boots it. */
  | { readonly kind: 'kexeced'; readonly type: SystemEventType; readonly slot: KexecSlot; readonly kernel: string; readonly detail: string }
  /** The image is on the disk and the VM is off. */
  | { readonly kind: 'hibernated'; readonly type: 'hibernate'; readonly sector: number; readonly bytes: number; readonly detail: string }
  /** The VM is off (powered off, panicked without a crash kernel, or a step failed). */
  | { readonly kind: 'stopped'; readonly type: SystemEventType; readonly detail: string }
  /** The VMM could not carry the event out before changing anything: the guest runs on. */
  | { readonly kind: 'refused'; readonly type: SystemEventType; readonly detail: string };

function stopped(vmm: Vmm, type: SystemEventType, detail: string, fields: Readonly<Record<string, AuditValue>> = {}): LifecycleOutcome {
  vmm.core.stop(detail);
  auditLifecycle(vmm, { type, result: 'stopped', detail, ...fields });
  return { kind: 'stopped', type, detail };
}

/**
 * Resets the VM and loads `kernel`: pins, locks, filters, records and RAM cleared; the
 * verifier's per-VM state forgotten; for a kernel other than the boot kernel, its manifest
 * installed in the verifier (checked again there); the core told the kernel's regions; the
 * segments loaded. Resolves to why it failed, if it did (the VM is then stopped).
 */
export async function resetInto(
  vmm: Vmm,
  kernel: BootKernel,
  options: { readonly newManifest: boolean; readonly why?: string },
): Promise<Result<void, string>> {
  vmm.reset({ clearMemory: true, why: options.why ?? `reset into ${kernel.name}` });
  const auth = vmm.core.auth;
  if (auth) {
    if (!auth.port.resetVm) return err('the verifier link cannot forget the VM state (no resetVm)');
    await auth.port.resetVm(auth.vm);
    if (options.newManifest) {
      const v = await auth.verify({ kind: 'kernel-manifest', vm: auth.vm, manifest: kernel.manifest });
      auth.record('kernel-manifest', kernel.name, v, { applied: v.ok });
      if (!v.ok) return err(`the verifier refused the new kernel's manifest: ${v.reason}`);
    }
    vmm.core.attachVerifier({ port: auth.port, vm: auth.vm, audit: auth.audit, kernelRegions: kernel.regions });
  }
  const loaded = vmm.loadKernel(kernel);
  if (!loaded.ok) return err(`cannot load the kernel: ${loaded.error}`);
  return ok(undefined);
}

async function kexecInto(vmm: Vmm, exit: ExitOf<'system-event'>, slot: KexecSlot): Promise<LifecycleOutcome> {
  const staged = vmm.staged(slot);
  if (!staged) return stopped(vmm, exit.type, `no ${slot} kernel is staged`);
  const kernel = await bootKernelFromBzImage(staged.image, staged.manifest);
  if (!kernel.ok) return stopped(vmm, exit.type, `the verified ${slot} kernel cannot be booted: ${kernel.error}`, { slot });
  const r = await resetInto(vmm, kernel.value, { newManifest: true, why: `${exit.type} into the ${slot} kernel ${kernel.value.name} (${exit.source})` });
  if (!r.ok) return stopped(vmm, exit.type, r.error, { slot });
  const detail = `reset into the ${slot} kernel ${kernel.value.name} (image SHA-256 ${staged.sha256}, verdict ${staged.request}); every pin and lock cleared for its boot`;
  auditLifecycle(vmm, { type: exit.type, result: 'kexec', slot, kernel: kernel.value.name, sha256: staged.sha256, source: exit.source });
  return { kind: 'kexeced', type: exit.type, slot, kernel: kernel.value.name, detail };
}

/**
 * Carries out the pending system event, if any. `guestState` is the guest kernel's own
 * bookkeeping, which a hibernation image carries opaquely (it is guest memory the simulation
 * keeps outside guest RAM). Resolves to undefined when nothing was pending.
 */
export async function carryOutSystemEvent(vmm: Vmm, options: { readonly guestState?: Uint8Array } = {}): Promise<LifecycleOutcome | undefined> {
  const exit = vmm.takePendingSystemEvent();
  if (!exit) return undefined;
  switch (exit.type) {
    case 'reset': {
      const kernel = vmm.bootKernel;
      if (!kernel) return stopped(vmm, 'reset', 'the VMM has no kernel to boot');
      const r = await resetInto(vmm, kernel, { newManifest: false, why: `reboot (${exit.source})` });
      if (!r.ok) return stopped(vmm, 'reset', r.error);
      const detail = `reset (${exit.source}): pins, locks, filters, verified records and RAM cleared; ${kernel.name} loaded to boot again`;
      auditLifecycle(vmm, { type: 'reset', result: 'rebooted', kernel: kernel.name, source: exit.source });
      return { kind: 'rebooted', type: 'reset', kernel: kernel.name, detail };
    }
    case 'kexec':
      return kexecInto(vmm, exit, 'kexec');
    case 'crash':
      if (vmm.staged('crash')) return kexecInto(vmm, exit, 'crash');
      return stopped(vmm, 'crash', `the guest panicked (${exit.source}) and no crash kernel is loaded: the VM is stopped`);
    case 'shutdown':
      return stopped(vmm, 'shutdown', `powered off (${exit.source})`);
    case 'hibernate': {
      const h = await hibernate(vmm, options.guestState ?? new Uint8Array(0));
      if (!h.ok) {
        // Nothing was written and nothing reset: like a failed hibernate() in Linux, the
        // kernel thaws and runs on, every protection in place.
        vmm.core.unpark();
        const detail = `hibernation refused: ${h.error}; the guest runs on`;
        auditLifecycle(vmm, { type: 'hibernate', result: 'refused', detail });
        return { kind: 'refused', type: 'hibernate', detail };
      }
      return {
        kind: 'hibernated',
        type: 'hibernate',
        sector: h.value.sector,
        bytes: h.value.bytes,
        detail: `image of ${h.value.bytes} bytes written at sector ${h.value.sector} of the disk; the VM is off`,
      };
    }
  }
}
