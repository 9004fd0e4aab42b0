/**
 * The VM's CPUs as the VMM owns them: the CPU model, how many of its possible CPUs are online,
 * the CPUID table the vCPUs answer from (KVM_SET_CPUID2), and CPU hotplug. Also the VMM's
 * debugger read of guest-virtual memory (KVM_TRANSLATE plus the `debug` host copy path).
 *
 * TRUST: the online count is the VMM's, never the guest's: the guest can only observe it
 * through CPUID, and the verifier learns it from the VMM's control plane before the count
 * rises here, so it never allows a lock-prefix restore the VMM did not make possible.
 */
import { gpaInFrame } from '../../shared/addr.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import { cpuidTable } from '../../shared/x86/cpuid.ts';
import type { VmCore } from '../core/vm-core.ts';
import type { Vcpu } from '../vcpu/vcpu.ts';
import type { AuditLog } from '../audit/audit-log.ts';
import { notify, type VmObserver } from '../observe/vm-observer.ts';
import type { HostMemory } from './host-memory.ts';

/** The CPU model of one VM and its CPUs online. */
export class VmCpus {
  #online: number;

  constructor(
    private readonly core: VmCore,
    readonly model: CpuModel,
  ) {
    this.#online = model.presentCpus;
    core.setCpuid(cpuidTable(model, this.#online, core.hypervisor));
  }

  /** CPUs online now: the model's present ones, plus those brought online since. */
  get online(): number {
    return this.#online;
  }

  /**
   * Brings one more vCPU online (ACPI CPU hotplug): allowed while fewer than the model's
   * possible CPUs are online and the VM runs. The verifier is told first (its answer must be
   * yes), then the vCPUs' CPUID reports the new count, the change is audited and observed.
   * A hot-added CPU stays across a reboot, as a hot-plugged QEMU CPU device does.
   */
  async bringOnline(vm: string, audit: AuditLog, observer: VmObserver | undefined): Promise<Result<number, string>> {
    const core = this.core;
    if (core.stopped !== undefined) return err(`the VM is stopped (${core.stopped})`);
    if (this.#online >= this.model.possibleCpus) return err(`all ${this.model.possibleCpus} possible CPUs of model ${this.model.name} are online`);
    const next = this.#online + 1;
    const auth = core.auth;
    if (auth) {
      if (!auth.port.setOnlineCpus) return err('the verifier link cannot be told the CPU count (no setOnlineCpus)');
      const told = await auth.port.setOnlineCpus(auth.vm, next);
      if (told !== undefined) return err(`the verifier was not told the new CPU count: ${told}`);
    }
    this.#online = next;
    core.setCpuid(cpuidTable(this.model, next, core.hypervisor));
    audit.append({ event: 'lifecycle', vm, type: 'cpu-online', online: next, possible: this.model.possibleCpus });
    if (observer?.cpusOnline) {
      const e = { vm, online: next, time: performance.now() };
      notify(() => observer.cpusOnline!(e));
    }
    return ok(next);
  }

  /** A restored state image's online count, for this model; the error says why it does not fit. */
  restoreOnline(online: number): Result<void, string> {
    if (!Number.isInteger(online) || online < this.model.presentCpus || online > this.model.possibleCpus) {
      return err(`the image has ${online} CPUs online; model ${this.model.name} has ${this.model.presentCpus} present and ${this.model.possibleCpus} possible`);
    }
    this.#online = online;
    this.core.setCpuid(cpuidTable(this.model, online, this.core.hypervisor));
    return ok(undefined);
  }
}

/**
 * Reads `len` bytes at guest-virtual `va` as a debugger does: KVM_TRANSLATE with `vcpu`'s
 * page tables, then the VMM's `debug` host copy path, page by page. No guest access checks,
 * but a private page in protected-memory mode is refused like any host copy.
 */
export function readGuestVirtual(vcpu: Vcpu, host: HostMemory, va: bigint, len: number): Result<Uint8Array, string> {
  const out = new Uint8Array(len);
  let done = 0;
  while (done < len) {
    const at = va + BigInt(done);
    const frame = vcpu.translateForCore(at);
    if (frame === undefined) return err(`0x${at.toString(16)} is not mapped by the guest's page tables`);
    const off = Number(at & 0xfffn);
    const n = Math.min(4096 - off, len - done);
    const page = host.copyFromGuest('debug', gpaInFrame(frame, off), n);
    if (!page.ok) return err(page.error.message);
    out.set(page.value, done);
    done += n;
  }
  return ok(out);
}
