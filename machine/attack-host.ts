/**
 * The host side of the attacks that are host-side by nature ({@link AttackHost}), on a real
 * machine: it arms faults in the verifier worker through the verifier link (the machine
 * enables fault injection only for attacks that declare `needs.verifierFaults`), rings the
 * emulated disk's doorbell, drives the VMM's named copy paths, reads the link's counters, and
 * runs the VMM's main loop for a system event the guest requested (its reset).
 * This is the only door from guest/attacks/ to host objects, and it opens only what the
 * interface names.
 */
import type { AttackHost } from '../guest/attacks/attack.ts';
import type { SimulatedMachine } from './simulated-machine.ts';

/** The {@link AttackHost} of `machine`. */
export function attackHost(machine: SimulatedMachine): AttackHost {
  const vmm = machine.vmm;
  return {
    crashVerifierOnNextRequest: () => machine.link.injectFault('crash'),
    answerNextRequestWithForeignVerdict: () => machine.link.injectFault('wrong-id'),
    verifierCounters: () => {
      const s = machine.link.stats;
      return { requests: s.requests, failClosed: s.failClosed, restarts: s.restarts, busy: s.busy };
    },
    ringDiskDoorbell: (descGpa) => {
      const r = vmm.devices.disk.notify(descGpa);
      return r.ok ? { ok: true, value: undefined } : { ok: false, error: `${r.error.kind}: ${r.error.message}` };
    },
    readDiskSectors: (sector, count) => vmm.devices.disk.readSectors(sector, count),
    carryOutSystemEvent: async () => {
      // The machine forgets the running kernel, as its own reboot step does.
      const out = await machine.carryOutSystemEvent();
      if (out === undefined) return { ok: false, error: 'no system event is pending' };
      return out.kind === 'rebooted' || out.kind === 'kexeced' ? { ok: true, value: out.detail } : { ok: false, error: `${out.kind}: ${out.detail}` };
    },
    vmmReadGuest: (path, gpa, len) => {
      const r = vmm.hostMemory.copyFromGuest(path, gpa, len);
      return r.ok ? { ok: true, value: r.value } : { ok: false, error: `${r.error.kind}: ${r.error.message}` };
    },
  };
}
