/**
 * The guest kernel's side of its lifecycle: how Linux reboots, reports a panic, enters S4 and
 * S5, and loads and runs a kexec kernel, on this platform (shared/platform-io.ts) and
 * through the Heki backend.
 *
 * - reboot: arch/x86/kernel/reboot.c's `reboot=pci` (BOOT_CF9_FORCE): RST_CNT = 0x02, then
 *   0x06. The VMM resets the VM; the kernel never runs again.
 * - panic: the pvpanic notifier writes PVPANIC_PANICKED; the VMM runs the crash kernel, if
 *   one is loaded, or stops the VM.
 * - hibernate / poweroff: ACPI PM1a_CNT with SLP_TYP S4 / S5 and SLP_EN. Under Heki the
 *   kernel does not write its own image: the VMM does (hypervisor/vmm/lifecycle/hibernate.ts).
 * - kexec: kexec_file_load copies the image and its signed manifest into kernel buffers and
 *   asks the hypervisor to verify and stage them; reboot(LINUX_REBOOT_CMD_KEXEC) asks it to
 *   reset the VM into them. The old kernel cannot jump there itself: the pins and locks that
 *   protect it stay until the VMM resets the VM.
 *
 * Every call answers what the guest saw: the fault or `stopped` outcome of its vCPU, or the
 * hypervisor's status.
 */
import { gva } from '../../shared/addr.ts';
import type { GuestCpu, GuestOutcome } from '../../shared/guest-cpu.ts';
import { ACPI_PM1A_CNT_PORT, PVPANIC, PVPANIC_PORT, RESET_CONTROL_PORT, RST_CNT, pm1SleepValue } from '../../shared/platform-io.ts';
import type { Heki } from '../heki/heki.ts';
import type { HekiStatus } from '../heki/hypervisor.ts';
import { PROT, type KernelMm } from '../mm/kernel-mm.ts';

/** The lifecycle operations of one kernel. */
export class KernelLifecycle {
  constructor(
    private readonly cpu: GuestCpu,
    private readonly mm: KernelMm,
    private readonly heki: Heki,
  ) {}

  /** emergency_restart through the reset control register. */
  reboot(): GuestOutcome<void> {
    const prepare = this.cpu.out(RESET_CONTROL_PORT, RST_CNT.SYS_RST, 1);
    if (!prepare.ok) return prepare;
    return this.cpu.out(RESET_CONTROL_PORT, RST_CNT.SYS_RST | RST_CNT.RST_CPU, 1);
  }

  /** panic(): the pvpanic notifier. */
  panic(): GuestOutcome<void> {
    return this.cpu.out(PVPANIC_PORT, PVPANIC.PANICKED, 1);
  }

  /** Enters S4 (hibernate) or S5 (power off). */
  sleep(state: 'S4' | 'S5'): GuestOutcome<void> {
    return this.cpu.out(ACPI_PM1A_CNT_PORT, pm1SleepValue(state), 2);
  }

  /**
   * kexec_file_load: copies `image` and `manifest` into fresh kernel buffers and asks the
   * hypervisor to verify and stage them (`crash`: the crash kernel's slot). The buffers are
   * freed afterwards: the hypervisor keeps its own copies.
   */
  async kexecLoad(image: Uint8Array, manifest: Uint8Array, crash: boolean): Promise<{ ok: true } | { ok: false; reason: string; status?: HekiStatus }> {
    const load = this.heki.hv.kexecLoad;
    if (!load) return { ok: false, reason: `the ${this.heki.hv.name} backend has no kexec` };
    const buffers: Array<{ va: bigint; pages: number }> = [];
    try {
      const place = async (bytes: Uint8Array, what: string): Promise<bigint | string> => {
        const pages = Math.max(1, Math.ceil(bytes.length / 4096));
        const m = await this.mm.vmalloc(pages, PROT.RW);
        if (!m.ok) return `${what}: ${m.reason}`;
        buffers.push({ va: m.value.va, pages });
        return this.cpu.write(gva(m.value.va), bytes).ok ? m.value.va : `${what}: cannot copy it into the kernel buffer`;
      };
      const imageVa = await place(image, 'the kexec image');
      if (typeof imageVa === 'string') return { ok: false, reason: imageVa };
      const manifestVa = await place(manifest, 'the kexec manifest');
      if (typeof manifestVa === 'string') return { ok: false, reason: manifestVa };
      const s = await load({ imageVa, imageLen: image.length, manifestVa, manifestLen: manifest.length, crash });
      return s.ok ? { ok: true } : { ok: false, reason: `the hypervisor refused the ${crash ? 'crash' : 'kexec'} kernel: ${s.name}`, status: s };
    } finally {
      for (const b of buffers) await this.mm.vfree(b.va, b.pages);
    }
  }

  /** reboot(LINUX_REBOOT_CMD_KEXEC): asks the hypervisor to reset the VM into the loaded kernel. */
  async kexecExec(): Promise<HekiStatus> {
    const exec = this.heki.hv.kexecExec;
    if (!exec) return { ok: false, status: -95, name: `the ${this.heki.hv.name} backend has no kexec` };
    return exec();
  }
}
