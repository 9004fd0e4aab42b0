/**
 * Attacks on the platform state the VMM pins when it accepts the guest's CR lock: the syscall
 * and sysenter entry points (LSTAR, SYSENTER_EIP) and the descriptor tables (IDTR, GDTR). An
 * attacker who points them at its own code owns every system call or interrupt. The write
 * must exit to the VMM (`msr-write` / `dt-write`), whose default policy injects #GP
 * (`msr-filter` / `dt-filter`), and the register must keep its value.
 */
import { MSR } from '../../shared/x86/cpu.ts';
import type { Attack } from './attack.ts';
import { allocFrame, faultLong, faultShort, hex, outcomeText } from './primitives.ts';

function msrAttack(name: string, msr: number, label: string, purpose: string): Attack {
  return {
    name,
    title: `overwrite ${label} (${purpose}) with an attacker address`,
    expectedStop: `msr-write exit for ${label}; the VMM injects #GP (msr-filter); ${label} unchanged`,
    run({ kernel, cpu }) {
      const before = cpu.rdmsr(msr);
      if (!before.ok) return Promise.resolve({ stopped: false, stop: 'attack could not read the MSR', detail: faultLong(before.fault) });
      const handler = allocFrame(kernel).va;
      const r = cpu.wrmsr(msr, handler);
      const after = cpu.rdmsr(msr);
      const value = after.ok ? after.value : undefined;
      const detail = `wrmsr ${label} = ${hex(handler)} (an attacker page): ${outcomeText(r)}; ${label} was ${hex(before.value)}, is ${value === undefined ? 'unreadable' : hex(value)}`;
      const stopped = !r.ok && value === before.value;
      return Promise.resolve({
        stopped,
        stop: !r.ok && stopped ? faultShort(r.fault) : `nothing: ${label} is ${value === undefined ? '?' : hex(value)}`,
        detail,
      });
    },
  };
}

function dtAttack(name: string, table: 'idtr' | 'gdtr'): Attack {
  const label = table.toUpperCase();
  return {
    name,
    title: `load ${label} with an attacker table (lidt/lgdt)`,
    expectedStop: `dt-write exit for ${table}; the VMM injects #GP (dt-filter); ${label} unchanged`,
    run({ kernel, cpu }) {
      const before = table === 'idtr' ? cpu.sidt() : cpu.sgdt();
      const fake = { base: allocFrame(kernel).va, limit: 0xfff };
      const r = table === 'idtr' ? cpu.lidt(fake) : cpu.lgdt(fake);
      const after = table === 'idtr' ? cpu.sidt() : cpu.sgdt();
      const same = after.base === before.base && after.limit === before.limit;
      const detail = `l${table.slice(0, 2)}t base ${hex(fake.base)} limit ${hex(fake.limit)}: ${outcomeText(r)}; ${label} was ${hex(before.base)}/${hex(before.limit)}, is ${hex(after.base)}/${hex(after.limit)}`;
      const stopped = !r.ok && same;
      return Promise.resolve({ stopped, stop: !r.ok && stopped ? faultShort(r.fault) : `nothing: ${label} base is ${hex(after.base)}`, detail });
    },
  };
}

/** The MSR and descriptor-table attacks. */
export const PLATFORM_ATTACKS: readonly Attack[] = [
  msrAttack('overwrite-lstar', MSR.LSTAR, 'LSTAR', 'the 64-bit syscall entry point'),
  msrAttack('overwrite-sysenter-eip', MSR.IA32_SYSENTER_EIP, 'SYSENTER_EIP', 'the sysenter entry point'),
  dtAttack('overwrite-idtr', 'idtr'),
  dtAttack('overwrite-gdtr', 'gdtr'),
];
