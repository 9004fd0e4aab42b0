/**
 * The operations a scenario step performs on a simulated machine (a VMM, its verifier VM and
 * a booted guest kernel), and what each reports. `heki run` (scenario/) drives this
 * interface; machine/machine.ts implements it on the real pieces.
 *
 * Every operation resolves (never rejects for a guest-level failure) to a {@link StepOutcome}:
 * `allowed` when the guest's action took effect, `denied` when a protection stopped it (a
 * fault, a refused hypercall, a verifier denial), `error` when the step itself could not be
 * carried out (a missing file, an unknown symbol, a malformed value).
 */
import type { MachineInspection } from './inspection.ts';

/** The most bytes one `saveMemory` writes: 64 MiB, room for the kernel's text, rodata and data together. */
export const SAVE_MEMORY_MAX = 64 << 20;

/** The result of one step. */
export interface StepOutcome {
  readonly outcome: 'allowed' | 'denied' | 'error';
  /** Why: the fault and its cause, the status, the verifier's reason, or the error. */
  readonly reason: string;
  /** Extra facts for reports (counts, addresses), optional. */
  readonly detail?: Readonly<Record<string, string | number | boolean>>;
}

/** An address as scenarios write it: hex (`0xffffffff81000000`) or `symbol+offset`. */
export type AddressExpr = string;

/** Privilege of an access. */
export type Mode = 'kernel' | 'user';

/** Which ftrace sites a step targets: every site, a glob over function names, or one symbol. */
export type FtraceTarget = 'all' | string;

/** What a `kexec` step hands the guest kernel (docs/scenarios.md, docs/lifecycle.md). */
export interface KexecOptions {
  /** The bzImage to kexec into (absolute path; default: the image the machine booted). */
  readonly image?: string;
  /**
   * Its signed manifest (absolute path, `heki manifest` output). Default: the host builds one
   * for the image (with `systemMap`) and signs it with its kernel-vendor key, standing in for
   * the vendor's build of the new kernel.
   */
  readonly manifest?: string;
  /** The new kernel's System.map (absolute path; default: the booted kernel's). */
  readonly systemMap?: string;
  /** Load it as the crash kernel (kexec -p): verified now, run only on a panic. Default false. */
  readonly crash?: boolean;
  /** The attack: flip one byte of the image or of the manifest before the guest hands it over. */
  readonly tamper?: 'image' | 'manifest';
  /** Who signs a built manifest: the host's kernel-vendor key (default) or a key the keyring does not trust. */
  readonly signer?: 'vendor' | 'untrusted';
}

/** What a machine can do. */
export interface MachineApi {
  /** Boots the guest kernel: page tables, ftrace NOPs, heki_late_init, end of boot. */
  boot(): Promise<StepOutcome>;
  /** Loads a module (and, like modprobe, its dependencies from the same folder). */
  loadModule(path: string): Promise<StepOutcome>;
  /** Unloads a module by name. */
  unloadModule(name: string): Promise<StepOutcome>;
  /** Enables or disables ftrace on all sites, a glob, or one function. */
  ftrace(op: 'enable' | 'disable', target: FtraceTarget): Promise<StepOutcome>;
  /** Enables or disables the static key at `key` (a symbol), patching all its jump labels. */
  jumpLabel(op: 'enable' | 'disable', key: AddressExpr): Promise<StepOutcome>;
  /**
   * static_call_update(key, target): points the static call key at `key` (its `__SCK__<name>`
   * symbol) at function `target`, or at NULL when `target` is null, patching the key's
   * trampoline and all its live sites in one batch.
   */
  staticCall(key: AddressExpr, target: AddressExpr | null): Promise<StepOutcome>;
  /** set_memory_<perm>(addr, pages). */
  setMemory(addr: AddressExpr, pages: number, perm: 'ro' | 'rw' | 'x' | 'nx' | 'rox'): Promise<StepOutcome>;
  /** Asks the hypervisor to poke `bytes` at `addr` (text_poke through the authenticated path). */
  textPoke(addr: AddressExpr, bytes: Uint8Array, kind?: 'ftrace' | 'jump-label' | 'static-call' | 'kprobe'): Promise<StepOutcome>;
  /** Installs (or removes) a kprobe at `addr`. */
  kprobe(addr: AddressExpr, op: 'install' | 'remove'): Promise<StepOutcome>;
  /** JITs an eBPF program image into the bpf_prog_pack area; signed with the scenario's key unless `signed: false`. */
  bpfJit(name: string, image: Uint8Array, signed: boolean): Promise<StepOutcome>;
  /** Reads `len` bytes at `addr`. */
  read(addr: AddressExpr, len: number, mode: Mode): Promise<StepOutcome>;
  /** Writes `bytes` at `addr`. */
  write(addr: AddressExpr, bytes: Uint8Array, mode: Mode): Promise<StepOutcome>;
  /** Fetches an instruction at `addr` (an execute access). */
  exec(addr: AddressExpr, mode: Mode): Promise<StepOutcome>;
  /** mov to CR0/CR3/CR4: a full value, or bits to set and clear in the current one. */
  writeCr(cr: 0 | 3 | 4, change: { value?: bigint; set?: bigint; clear?: bigint }): Promise<StepOutcome>;
  /** wrmsr. */
  writeMsr(msr: number, value: bigint): Promise<StepOutcome>;
  /**
   * Reboots through the platform's reset register: the VMM resets the VM (pins, locks,
   * filters, verified records cleared), the kernel boots again and locks itself anew.
   */
  reboot(): Promise<StepOutcome>;
  /**
   * kexec: the guest loads a kernel and its signed manifest; the verifier checks them; then
   * (unless `crash`) the guest asks to run it and the VMM resets the VM into it. Denied when
   * the verifier refuses: the old kernel runs on with every protection.
   */
  kexec(options: KexecOptions): Promise<StepOutcome>;
  /** The guest panics (pvpanic): the VMM runs the loaded crash kernel, or stops the VM. */
  panic(): Promise<StepOutcome>;
  /** The guest enters S4: the VMM writes a signed image of the VM to its disk; the VM is off. */
  hibernate(): Promise<StepOutcome>;
  /**
   * The VMM resumes the VM from the image on its disk once the verifier accepted it.
   * `tamper`: the attack, one byte of the image on the disk flipped first. Denied when refused.
   */
  resume(options?: { readonly tamper?: boolean }): Promise<StepOutcome>;
  /**
   * Live migration: a snapshot signed by this VMM, restored into a fresh VM (a new VMM and
   * verifier) which goes on as this machine. `tamper`: the attack, one byte of the snapshot
   * flipped in transit. Denied when the destination refuses it: the source VM runs on.
   */
  migrate(options?: { readonly tamper?: boolean }): Promise<StepOutcome>;
  /**
   * CPU hotplug: the VMM brings one more vCPU online (only while fewer than the model's
   * possible CPUs are), tells the verifier, and the guest restores its SMP lock prefixes as
   * alternatives_enable_smp() does, through the authenticated text-patch path. `error` when
   * no CPU can come online; `denied` when the verifier refuses the lock-prefix patch.
   */
  cpuOnline(): Promise<StepOutcome>;
  /**
   * Writes `len` bytes of guest memory at kernel virtual address `addr` (translated by the
   * guest's page tables, read through the VMM's `debug` copy path) to the file `out`.
   */
  saveMemory(addr: AddressExpr, len: number, out: string): Promise<StepOutcome>;
  /** A raw hypercall. `allowed` when it returns >= 0. */
  hypercall(nr: number, args: readonly bigint[]): Promise<StepOutcome>;
  /** Resolves an address expression against System.map and loaded modules, or says why not. */
  resolve(addr: AddressExpr): { ok: true; value: bigint } | { ok: false; error: string };
  /**
   * Optional: the guest-physical map of the kernel image and of every loaded module, with the
   * EPT permissions of their frames, as plain data (machine/inspection.ts). `heki run
   * --report` reads it after the last step; a machine without it gets a report without a map.
   */
  inspect?(): MachineInspection;
  /** Stops the verifier workers; the machine is unusable afterwards. */
  dispose(): Promise<void>;
  /**
   * Optional: a mark in the record of the verifier's verdicts (the audit log), and the
   * verifier's reasons for the denials recorded since a mark. The scenario runner uses them
   * to say why a step was denied when the guest saw only a status (`-KVM_EPERM`).
   */
  verdictMark?(): number;
  deniedSince?(mark: number): readonly string[];
}
