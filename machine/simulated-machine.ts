/**
 * {@link MachineApi} on the real pieces: the VMM and core, the verifier link, and the guest
 * kernel once booted. Each step reports `allowed`, `denied` (a protection stopped it) or
 * `error` (the step could not be carried out), with the reason.
 *
 * The machine holds its parts (machine/machine-parts.ts) and nothing else; the steps live by
 * concept: the boot (guest-boot.ts), what the running kernel does (kernel-steps.ts), what
 * the vCPU does (cpu-steps.ts), and the lifecycle (lifecycle/machine-lifecycle.ts), whose
 * steps return the parts the machine goes on with (a new kernel, a new image, after a
 * migration a new VMM and verifier).
 */
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import type { Vmm } from '../hypervisor/vmm/vmm.ts';
import type { VerifierLink } from '../hypervisor/verifier-link/verifier-link.ts';
import type { LifecycleOutcome } from '../hypervisor/vmm/lifecycle/system-events.ts';
import type { AuditLog } from '../hypervisor/audit/audit-log.ts';
import type { Ed25519KeyPair } from '../shared/crypto/ed25519.ts';
import type { GuestKernel } from '../guest/kernel/guest-kernel.ts';
import type { AddressExpr, FtraceTarget, KexecOptions, MachineApi, Mode, StepOutcome } from './machine-api.ts';
import type { MachineHost } from './lifecycle/machine-host.ts';
import type { MachineParts, StepResult } from './machine-parts.ts';
import { bootGuest } from './guest-boot.ts';
import * as cpu from './cpu-steps.ts';
import * as kernel from './kernel-steps.ts';
import * as lifecycle from './lifecycle/machine-lifecycle.ts';
import { resolveAddress } from './resolve-address.ts';
import { NOT_BOOTED } from './step-outcome.ts';
import { inspectVm, type MachineInspection } from './inspection.ts';

export type { MachineHost, MachineSwap } from './lifecycle/machine-host.ts';

/** What a machine is built from (machine/machine.ts builds them, or a restore does). */
export interface SimulatedMachineParts {
  readonly vmm: Vmm;
  readonly link: VerifierLink;
  readonly audit: AuditLog;
  /** The kernel image the VMM boots (and, until a kexec, the guest runs). */
  readonly image: KernelImage;
  readonly memoryBytes: bigint;
  readonly codeSigner: Ed25519KeyPair;
  readonly log?: (line: string) => void;
  /** Without it, the lifecycle steps answer `error`. */
  readonly host?: MachineHost;
  /** A guest kernel already running (a restored VM's). */
  readonly kernel?: GuestKernel;
}

/** A simulated machine. */
export class SimulatedMachine implements MachineApi {
  #parts: MachineParts;
  #disposed = false;

  constructor(parts: SimulatedMachineParts) {
    const { kernel: running, ...rest } = parts;
    this.#parts = { ...rest, bootImage: parts.image, kernel: running };
  }

  /** The VMM (after a migration: the destination's). */
  get vmm(): Vmm {
    return this.#parts.vmm;
  }

  /** The verifier link (after a migration: the destination's). */
  get link(): VerifierLink {
    return this.#parts.link;
  }

  /** The audit log (one across the machine's whole life, migrations included). */
  get audit(): AuditLog {
    return this.#parts.audit;
  }

  /** The kernel image the guest runs (after a kexec: the new one). */
  get image(): KernelImage {
    return this.#parts.image;
  }

  /** The booted kernel, if any. */
  get kernel(): GuestKernel | undefined {
    return this.#parts.kernel;
  }

  /** Its parts as they are now, read-only (the composition root's: a fork copies from them). */
  get parts(): Readonly<MachineParts> {
    return this.#parts;
  }

  /** The host side the lifecycle steps use (after a migration: the destination's), if the machine has one. */
  get host(): MachineHost | undefined {
    return this.#parts.host;
  }

  /** Goes on with the parts a step returned; a verifier link left behind (a migration's source) is disposed. */
  async #settle(r: StepResult): Promise<StepOutcome> {
    const next = r.next;
    if (next) {
      const old = this.#parts.link;
      this.#parts = next;
      if (next.link !== old) await old.dispose();
    }
    return r.outcome;
  }

  /** Runs a step of the running guest kernel, or says there is none. */
  #onKernel(step: (p: kernel.Running) => Promise<StepOutcome>): Promise<StepOutcome> {
    const p = this.#parts;
    return p.kernel ? step({ ...p, kernel: p.kernel }) : Promise.resolve(NOT_BOOTED);
  }

  verdictMark(): number {
    return this.audit.count;
  }

  deniedSince(mark: number): string[] {
    // Verdicts only (not lifecycle or host records); a retryable "busy" was retried by the guest.
    return this.audit
      .since(mark)
      .filter((r) => r['event'] === 'verdict' && r['ok'] === false && r['retryable'] !== true)
      .map((r) => `${String(r['kind'])} ${String(r['subject'])}: ${String(r['reason'])}`);
  }

  async boot(): Promise<StepOutcome> {
    return this.#settle(await bootGuest(this.#parts));
  }

  loadModule(path: string): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.loadModule(p, path));
  }

  unloadModule(name: string): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.unloadModule(p, name));
  }

  ftrace(op: 'enable' | 'disable', target: FtraceTarget): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.ftrace(p, op, target));
  }

  jumpLabel(op: 'enable' | 'disable', key: AddressExpr): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.jumpLabel(p, op, key));
  }

  staticCall(key: AddressExpr, target: AddressExpr | null): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.staticCall(p, key, target));
  }

  setMemory(addr: AddressExpr, pages: number, perm: 'ro' | 'rw' | 'x' | 'nx' | 'rox'): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.setMemory(p, addr, pages, perm));
  }

  textPoke(addr: AddressExpr, bytes: Uint8Array, kind: 'ftrace' | 'jump-label' | 'static-call' | 'kprobe' = 'ftrace'): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.textPoke(p, addr, bytes, kind));
  }

  kprobe(addr: AddressExpr, op: 'install' | 'remove'): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.kprobe(p, addr, op));
  }

  bpfJit(name: string, image: Uint8Array, signed: boolean): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.bpfJit(p, name, image, signed));
  }

  cpuOnline(): Promise<StepOutcome> {
    return this.#onKernel((p) => kernel.cpuOnline(p));
  }

  async read(addr: AddressExpr, len: number, mode: Mode): Promise<StepOutcome> {
    return cpu.read(this.#parts, addr, len, mode);
  }

  async write(addr: AddressExpr, bytes: Uint8Array, mode: Mode): Promise<StepOutcome> {
    return cpu.write(this.#parts, addr, bytes, mode);
  }

  async exec(addr: AddressExpr, mode: Mode): Promise<StepOutcome> {
    return cpu.exec(this.#parts, addr, mode);
  }

  async writeCr(cr: 0 | 3 | 4, change: { value?: bigint; set?: bigint; clear?: bigint }): Promise<StepOutcome> {
    return cpu.writeCr(this.#parts, cr, change);
  }

  async writeMsr(msr: number, value: bigint): Promise<StepOutcome> {
    return cpu.writeMsr(this.#parts, msr, value);
  }

  async saveMemory(addr: AddressExpr, len: number, out: string): Promise<StepOutcome> {
    return cpu.saveMemory(this.#parts, addr, len, out);
  }

  hypercall(nr: number, args: readonly bigint[]): Promise<StepOutcome> {
    return cpu.hypercall(this.#parts, nr, args);
  }

  async reboot(): Promise<StepOutcome> {
    return this.#settle(await lifecycle.reboot(this.#parts));
  }

  async kexec(options: KexecOptions): Promise<StepOutcome> {
    return this.#settle(await lifecycle.kexec(this.#parts, options));
  }

  async panic(): Promise<StepOutcome> {
    return this.#settle(await lifecycle.panic(this.#parts));
  }

  async hibernate(): Promise<StepOutcome> {
    return this.#settle(await lifecycle.hibernateStep(this.#parts));
  }

  async resume(options: { tamper?: boolean } = {}): Promise<StepOutcome> {
    return this.#settle(await lifecycle.resumeStep(this.#parts, options));
  }

  async migrate(options: { tamper?: boolean } = {}): Promise<StepOutcome> {
    return this.#settle(await lifecycle.migrateStep(this.#parts, options));
  }

  /**
   * Carries out the system event the guest requested itself (a reset written to the
   * platform's register, as an attack does): the running kernel is gone afterwards, whatever
   * the guest boots next. `undefined` when no event was pending.
   */
  async carryOutSystemEvent(): Promise<LifecycleOutcome | undefined> {
    const r = await lifecycle.pendingSystemEvent(this.#parts);
    if (r) this.#parts = r.next;
    return r?.out;
  }

  resolve(addr: AddressExpr): { ok: true; value: bigint } | { ok: false; error: string } {
    return resolveAddress(this.#parts, addr);
  }

  /** The guest-physical map with its EPT permissions (machine/inspection.ts). */
  inspect(): MachineInspection {
    return inspectVm(this.vmm, this.image, this.kernel);
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.link.dispose();
    this.audit.close();
  }
}
