/**
 * Forking a booted VM in memory (machine/machine-fork.ts drives it): the VMM half of what a
 * restore does (vm-state-image.ts `applyVmImage`), from the parent VMM's live objects instead
 * of a signed image, so a fork costs a copy of the protection state and one map entry per
 * resident page rather than an encode, a deflate and a page-by-page copy.
 *
 * The child VMM is new, built with the parent's configuration ({@link Vmm.settings}) and its
 * verifier attached under the parent's VM name, its kernel not loaded (memory comes from the
 * parent). Then, before any vCPU of the child runs:
 * - the core (VmCore.forkFrom): memory shared copy-on-write, EPT copied, pins, filters, exit
 *   masks, shared frames, registers and the authenticator's records;
 * - the VMM's own state, as a `vmm` section carries it: the CPUs online, whether the platform
 *   state is pinned, the verified kexec and crash kernels staged;
 * - the disk's written sectors (copied).
 *
 * TRUST: both VMs are the host's own, in one process; nothing here comes from the guest or
 * from storage, so there is no image to check. The verifier state is the runtime's part: it
 * goes from the parent's verifier to the child's over the control plane (VerifierLink
 * `exportVm` / `importVm`), where the child's verifier checks it as it checks a restore.
 */
import { type Result, err, ok } from '../../../shared/result.ts';
import type { Vmm } from '../vmm.ts';

/**
 * Makes `child` (fresh, see the file comment) a copy of idle `parent`. Errors name what did
 * not fit; `child` must then be discarded (its core may hold part of the copy).
 */
export function forkVmInto(parent: Vmm, child: Vmm): Result<void, string> {
  if (parent.core.stopped !== undefined) return err(`the VM to fork is stopped (${parent.core.stopped})`);
  if (parent.pendingSystemEvent) return err(`the VM to fork has a system event pending (${parent.pendingSystemEvent.type})`);
  if (parent.cpuModel.name !== child.cpuModel.name) return err(`the VM to fork runs CPU model ${parent.cpuModel.name}, the new VM ${child.cpuModel.name}`);
  const core = child.core.forkFrom(parent.core);
  if (!core.ok) return err(`cannot fork the VM's core: ${core.error.message}`);
  const online = child.restoreOnlineCpus(parent.onlineCpus);
  if (!online.ok) return online;
  child.markPlatformPinned(parent.platformPinned);
  for (const slot of ['kexec', 'crash'] as const) {
    const staged = parent.staged(slot);
    if (staged) child.restageKexec(slot, structuredClone(staged));
  }
  child.devices.disk.importSectors(parent.devices.disk.exportSectors());
  return ok(undefined);
}
