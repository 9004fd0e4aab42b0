/**
 * The platform's I/O ports that ask for a lifecycle event, as the guest kernel and the core
 * agree on them. On a PC a kernel reboots, reports a panic and enters S4/S5 by writing a
 * chipset register, not by calling the hypervisor; the write leaves the guest (KVM_EXIT_IO)
 * and the VMM turns it into a reset, a panic event or a power-off (QEMU's
 * qemu_system_reset_request(), its pvpanic device, its ACPI PM1 control). Here the core
 * decodes these few registers and reports a `system-event` exit (KVM_EXIT_SYSTEM_EVENT's
 * shape: reset, crash, shutdown; plus hibernate and kexec), and the VMM, which owns the
 * lifecycle, decides and carries it out.
 *
 * - Reset control register, port 0xCF9 (Intel ICH/PCH "RST_CNT"): bit 1 SYS_RST asks for a
 *   full (hard) reset, bit 2 RST_CPU performs the reset. Linux's `reboot=pci` path writes
 *   0x02 and then 0x06 (arch/x86/kernel/reboot.c, BOOT_CF9_FORCE).
 * - pvpanic, port 0x505 (QEMU's ISA pvpanic device, drivers/misc/pvpanic): bit 0
 *   PVPANIC_PANICKED is written by the guest's panic notifier.
 * - ACPI PM1a control, port 0x604 (QEMU q35: ICH9 PM base 0x600 + 4), 16 bits: SLP_EN (bit
 *   13) with SLP_TYP (bits 12:10) enters a sleep state: type 0 is S5 (soft off), type 2 is S4
 *   (suspend to disk; QEMU's default `s4_val`).
 *
 * Every other port is unclaimed: writes go nowhere, as on a PC bus with no device there.
 */

/** The reset control register's port. */
export const RESET_CONTROL_PORT = 0xcf9;
/** RST_CNT bits. */
export const RST_CNT = {
  /** System reset (hard) rather than a CPU-only (soft) one. */
  SYS_RST: 1 << 1,
  /** Performs the reset. */
  RST_CPU: 1 << 2,
} as const;

/** The pvpanic device's port. */
export const PVPANIC_PORT = 0x505;
/** pvpanic event bits (include/uapi/misc/pvpanic.h). */
export const PVPANIC = { PANICKED: 1 << 0, CRASH_LOADED: 1 << 1 } as const;

/** The ACPI PM1a control register's port (16 bits). */
export const ACPI_PM1A_CNT_PORT = 0x604;
/** PM1a_CNT bits. */
export const PM1_CNT = {
  /** Enters the sleep state SLP_TYP names. */
  SLP_EN: 1 << 13,
  /** Shift of the 3-bit SLP_TYP field. */
  SLP_TYP_SHIFT: 10,
} as const;
/** SLP_TYP values of the QEMU q35 DSDT: `_S5` is 0, `_S4` is 2. */
export const SLP_TYP = { S5: 0, S4: 2 } as const;

/** The PM1a_CNT value that enters `state`. */
export function pm1SleepValue(state: 'S4' | 'S5'): number {
  return PM1_CNT.SLP_EN | (SLP_TYP[state] << PM1_CNT.SLP_TYP_SHIFT);
}

/**
 * A lifecycle event the guest (or its platform) asked for, as the VMM sees it in a
 * `system-event` exit:
 * - `reset`: reboot (RST_CNT.RST_CPU);
 * - `crash`: the kernel panicked (pvpanic);
 * - `shutdown`: S5, power off;
 * - `hibernate`: S4, suspend to disk;
 * - `kexec`: the guest asks to run the kexec kernel it loaded (KVM_HC_HEKI_KEXEC).
 */
export type SystemEventType = 'reset' | 'crash' | 'shutdown' | 'hibernate' | 'kexec';

/** Every system event type. */
export const SYSTEM_EVENT_TYPES: readonly SystemEventType[] = ['reset', 'crash', 'shutdown', 'hibernate', 'kexec'];

/** An operand size of `out`. */
export type PortSize = 1 | 2 | 4;

/** What one port write means. */
export type PortWrite =
  /** Nothing claims the port, or the value does not trigger anything (a latch). */
  | { readonly kind: 'none' }
  /** A lifecycle event; `source` names the register and value, for logs. */
  | { readonly kind: 'event'; readonly type: SystemEventType; readonly source: string };

/** Decodes a guest `out` of `value` (`size` bytes) to `port`. */
export function decodePortWrite(port: number, value: number, size: PortSize): PortWrite {
  const hex = (v: number): string => `0x${v.toString(16)}`;
  if (port === RESET_CONTROL_PORT && size === 1 && (value & RST_CNT.RST_CPU) !== 0) {
    return { kind: 'event', type: 'reset', source: `RST_CNT (port 0xcf9) = ${hex(value)}` };
  }
  if (port === PVPANIC_PORT && size === 1 && (value & PVPANIC.PANICKED) !== 0) {
    return { kind: 'event', type: 'crash', source: `pvpanic (port 0x505) = ${hex(value)}` };
  }
  if (port === ACPI_PM1A_CNT_PORT && size === 2 && (value & PM1_CNT.SLP_EN) !== 0) {
    const typ = (value >> PM1_CNT.SLP_TYP_SHIFT) & 7;
    if (typ === SLP_TYP.S4) return { kind: 'event', type: 'hibernate', source: `PM1a_CNT (port 0x604) = ${hex(value)}: S4` };
    if (typ === SLP_TYP.S5) return { kind: 'event', type: 'shutdown', source: `PM1a_CNT (port 0x604) = ${hex(value)}: S5` };
  }
  return { kind: 'none' };
}
