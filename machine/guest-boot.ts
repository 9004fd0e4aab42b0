/**
 * The `boot` step: the guest kernel boots on the VM as the VMM loaded it (page tables, ftrace
 * NOPs, heki_late_init, end of boot). On a VM that is off (hibernated, a refused resume, a
 * panic, powered off) it is a cold boot: the VMM resets the VM into its boot kernel first.
 */
import { bootKernel } from '../guest/kernel/boot.ts';
import { GuestKernel } from '../guest/kernel/guest-kernel.ts';
import { resetInto } from '../hypervisor/vmm/lifecycle/system-events.ts';
import type { MachineParts, StepResult } from './machine-parts.ts';
import { allowed, denied, error } from './step-outcome.ts';

/** Boots the guest kernel on `p`; the result's parts hold the booted kernel. */
export async function bootGuest(p: MachineParts): Promise<StepResult> {
  if (p.kernel) return { outcome: error('the kernel is already booted') };
  let parts = p;
  if (p.vmm.core.stopped !== undefined) {
    const kernel = p.vmm.bootKernel;
    if (!kernel) return { outcome: error(`the VM is stopped (${p.vmm.core.stopped}) and the VMM has no kernel to boot`) };
    const r = await resetInto(p.vmm, kernel, { newManifest: false });
    if (!r.ok) return { outcome: error(`cold boot: ${r.error}`) };
    parts = { ...p, image: p.bootImage };
  }
  const image = parts.image;
  const r = await bootKernel(parts.vmm.bootCpu, image, { ramBytes: parts.memoryBytes, ...(parts.log ? { log: parts.log } : {}) });
  if (!r.ok) {
    // A request heki_late_init made was refused: a protection stopped the boot.
    const outcome = r.error.refused
      ? denied(`boot stopped in ${r.error.phase}: ${r.error.message}`)
      : error(`boot failed in ${r.error.phase}: ${r.error.message}`);
    return { outcome, next: parts };
  }
  const total = Object.values(r.value.timings).reduce((a, b) => a + b, 0);
  return {
    outcome: allowed(`booted ${image.mcountSites.length} ftrace sites NOPed, kernel locked and verified`, { ms: Math.round(total) }),
    next: { ...parts, kernel: new GuestKernel(r.value) },
  };
}
