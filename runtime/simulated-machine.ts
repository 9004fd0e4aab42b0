/**
 * {@link MachineApi} on the real pieces: the VMM and core, the verifier link, and the guest
 * kernel once booted. Each step reports `allowed`, `denied` (a protection stopped it) or
 * `error` (the step could not be carried out), with the reason.
 */
import { dirname, basename, join } from 'node:path';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readHostFile } from '../shared/host-file.ts';
import type { GuestFault, GuestOutcome } from '../shared/guest-cpu.ts';
import { statusName } from '../shared/abi.ts';
import { resolveSymbolExpression } from '../shared/kernel-image/system-map.ts';
import type { KernelImage } from '../shared/kernel-image/vmlinux.ts';
import { parseModuleFile, readModinfo } from '../shared/module/index.ts';
import type { Vmm } from '../hypervisor/vmm/vmm.ts';
import type { VerifierLink } from '../hypervisor/verifier-link/verifier-link.ts';
import type { AuditLog } from '../hypervisor/audit/audit-log.ts';
import { signCodeImage } from '../verifier-vm/signature/code-image.ts';
import { ed25519KeyId, type Ed25519KeyPair } from '../shared/crypto/ed25519.ts';
import { bootKernel } from '../guest/kernel/boot.ts';
import { GuestKernel } from '../guest/kernel/guest-kernel.ts';
import type { ModuleSource } from '../guest/modules/module-loader.ts';
import type { AddressExpr, KexecOptions, MachineApi, Mode, StepOutcome } from './machine-api.ts';
import type { MachineHost } from './lifecycle/machine-host.ts';
import { resetInto } from '../hypervisor/vmm/lifecycle/system-events.ts';
import * as lifecycle from './lifecycle/machine-lifecycle.ts';
import { inspectVm, type MachineInspection } from './inspection.ts';
import { LIMITS } from './scenario/steps.ts';

export type { MachineHost, MachineSwap } from './lifecycle/machine-host.ts';

const allowed = (reason: string, detail?: StepOutcome['detail']): StepOutcome => ({ outcome: 'allowed', reason, ...(detail ? { detail } : {}) });
const denied = (reason: string, detail?: StepOutcome['detail']): StepOutcome => ({ outcome: 'denied', reason, ...(detail ? { detail } : {}) });
const error = (reason: string): StepOutcome => ({ outcome: 'error', reason });

/** The most bytes one save-memory step writes. */
const SAVE_MEMORY_MAX = LIMITS.saveBytes;

/** Describes a fault the way reports show it: `#PF (ept-violation): ...`. */
export function describeFault(f: GuestFault): string {
  return f.kind === 'stopped' ? `VM stopped: ${f.detail}` : `#${f.vector} (${f.cause}): ${f.detail}`;
}

function fromOutcome(r: GuestOutcome<unknown>, what: string): StepOutcome {
  return r.ok ? allowed(what) : denied(describeFault(r.fault));
}

/** What the machine is made of. */
export interface SimulatedMachineParts {
  readonly vmm: Vmm;
  readonly link: VerifierLink;
  readonly audit: AuditLog;
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
  #vmm: Vmm;
  #link: VerifierLink;
  readonly audit: AuditLog;
  #image: KernelImage;
  #kernel: GuestKernel | undefined;
  #disposed = false;
  #parts: SimulatedMachineParts;

  constructor(parts: SimulatedMachineParts) {
    this.#parts = parts;
    this.#vmm = parts.vmm;
    this.#link = parts.link;
    this.audit = parts.audit;
    this.#image = parts.image;
    this.#kernel = parts.kernel;
  }

  /** The VMM (after a migration: the destination's). */
  get vmm(): Vmm {
    return this.#vmm;
  }

  /** The verifier link (after a migration: the destination's). */
  get link(): VerifierLink {
    return this.#link;
  }

  /** The kernel image the guest runs (after a kexec: the new one). */
  get image(): KernelImage {
    return this.#image;
  }

  /** The booted kernel, if any. */
  get kernel(): GuestKernel | undefined {
    return this.#kernel;
  }

  /** What the lifecycle operations see of the machine (runtime/lifecycle/). */
  get internals(): lifecycle.MachineInternals {
    return {
      vmm: this.#vmm,
      link: this.#link,
      audit: this.audit,
      image: this.#image,
      kernel: this.#kernel,
      parts: this.#parts,
      setKernel: (k, image) => {
        this.#kernel = k;
        if (image) this.#image = image;
      },
      bootGuest: () => this.boot(),
      swap: async (to) => {
        const old = this.#link;
        this.#vmm = to.vmm;
        this.#link = to.link;
        this.#image = to.image;
        this.#kernel = to.kernel;
        this.#parts = { ...this.#parts, vmm: to.vmm, link: to.link, image: to.image, host: to.host };
        await old.dispose();
      },
    };
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
    if (this.#kernel) return error('the kernel is already booted');
    if (this.vmm.core.stopped !== undefined) {
      // A VM that is off (hibernated, a refused resume, a panic, powered off): a cold boot.
      const kernel = this.vmm.bootKernel;
      if (!kernel) return error(`the VM is stopped (${this.vmm.core.stopped}) and the VMM has no kernel to boot`);
      const r = await resetInto(this.vmm, kernel, { newManifest: false });
      if (!r.ok) return error(`cold boot: ${r.error}`);
      this.#image = this.#parts.image;
    }
    const r = await bootKernel(this.vmm.bootCpu, this.image, { ramBytes: this.#parts.memoryBytes, ...(this.#parts.log ? { log: this.#parts.log } : {}) });
    if (!r.ok) return r.error.phase === 'heki_late_init' ? denied(`boot stopped in ${r.error.phase}: ${r.error.message}`) : error(`boot failed in ${r.error.phase}: ${r.error.message}`);
    this.#kernel = new GuestKernel(r.value);
    const total = Object.values(r.value.timings).reduce((a, b) => a + b, 0);
    return allowed(`booted ${this.image.mcountSites.length} ftrace sites NOPed, kernel locked and verified`, { ms: Math.round(total) });
  }

  #needKernel(): GuestKernel | StepOutcome {
    return this.#kernel ?? error('the kernel is not booted (add a boot step first)');
  }

  async loadModule(path: string): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const read = readHostFile(path);
    if (!read.ok) return error(`cannot read module ${read.error}`);
    const file = read.value;
    const elf = parseModuleFile(file);
    if (!elf.ok) return error(`${path}: ${elf.error.message}`);
    const info = readModinfo(elf.value);
    if (!info.ok || !info.value.name) return error(`${path}: ${info.ok ? '.modinfo has no name' : info.error.message}`);
    const name = info.value.name;
    const dir = dirname(path);
    const source: ModuleSource = {
      where: dir,
      read: (n) => {
        if (n === name) return file;
        for (const candidate of [n, n.replaceAll('_', '-'), n.replaceAll('-', '_')]) {
          const p = join(dir, `${candidate}.ko`);
          if (existsSync(p)) return new Uint8Array(readFileSync(p));
        }
        return undefined;
      },
    };
    const r = await k.modules.modprobe(name, source);
    if (!r.ok) return /the hypervisor refused/.test(r.error) ? denied(r.error) : error(r.error);
    const names = r.value.map((m) => m.name);
    return allowed(names.length ? `loaded ${names.join(', ')}` : `${name} was already loaded`, { modules: names.join(',') });
  }

  async unloadModule(name: string): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const r = await k.modules.unload(name);
    if (!r.ok) return /the hypervisor refused/.test(r.error) ? denied(r.error) : error(r.error);
    return allowed(`unloaded ${name}; its pages are data-only`);
  }

  async ftrace(op: 'enable' | 'disable', target: string): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const r = await k.ftrace.set(op, target);
    if (r.selected === 0) return error(`no traceable function matches "${target}"`);
    if (!r.ok) return denied(r.reason);
    return allowed(`${op}d tracing of ${r.selected} site(s): ${r.patches} patched in ${r.batches} batch(es)`, { selected: r.selected, patched: r.patches });
  }

  async jumpLabel(op: 'enable' | 'disable', key: AddressExpr): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const a = this.resolve(key);
    if (!a.ok) return error(a.error);
    const r = await k.jumpLabels.set(a.value, op === 'enable');
    if (!r.ok) return r.entries === 0 ? error(r.reason) : denied(r.reason);
    return allowed(`${op}d static key ${key}: ${r.patches} of ${r.entries} jump label(s) patched`);
  }

  async staticCall(key: AddressExpr, target: AddressExpr | null): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const a = this.resolve(key);
    if (!a.ok) return error(a.error);
    const info = k.staticCalls.key(a.value);
    if (!info) return error(`${key} (0x${a.value.toString(16)}) is not a static call key (a __SCK__<name> symbol)`);
    let func: bigint | null = null;
    if (target !== null) {
      const t = this.resolve(target);
      if (!t.ok) return error(t.error);
      func = t.value;
    }
    const r = await k.staticCalls.update(info.key, func);
    const what = `static_call_update(${info.name}, ${target ?? 'NULL'})`;
    if (!r.ok) return r.stage === 'guest' ? error(`${what}: ${r.reason}`) : denied(r.reason);
    return allowed(`${what}: the trampoline and ${r.sites} site(s) patched in ${r.batches} batch(es)`, { sites: r.sites, patched: r.patches });
  }

  async setMemory(addr: AddressExpr, pages: number, perm: 'ro' | 'rw' | 'x' | 'nx' | 'rox'): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const a = this.resolve(addr);
    if (!a.ok) return error(a.error);
    const va = a.value & ~0xfffn;
    const r = await k.mm.setMemory(va, pages, perm);
    if (!r.ok) return /refused/.test(r.reason) ? denied(r.reason) : error(r.reason);
    return allowed(`set_memory_${perm}(0x${va.toString(16)}, ${pages})`);
  }

  async textPoke(addr: AddressExpr, bytes: Uint8Array, kind: 'ftrace' | 'jump-label' | 'static-call' | 'kprobe' = 'ftrace'): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const a = this.resolve(addr);
    if (!a.ok) return error(a.error);
    const cur = k.cpu.read(a.value, bytes.length);
    if (!cur.ok) return error(`cannot read the current bytes at ${addr}: ${describeFault(cur.fault)}`);
    const r = await k.poker.poke([{ kind, site: a.value, oldBytes: cur.value, newBytes: bytes }]);
    return r.ok ? allowed(`poked ${bytes.length} byte(s) at ${addr}`) : denied(r.reason);
  }

  async kprobe(addr: AddressExpr, op: 'install' | 'remove'): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const a = this.resolve(addr);
    if (!a.ok) return error(a.error);
    const r = op === 'install' ? await k.kprobes.install(a.value) : await k.kprobes.remove(a.value);
    return r.ok ? allowed(`kprobe ${op === 'install' ? 'installed' : 'removed'} at ${addr}`) : denied(r.reason);
  }

  async bpfJit(name: string, image: Uint8Array, signed: boolean): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    const key = this.#parts.codeSigner;
    const signer = signed ? (img: Uint8Array, placement: { what: 'bpf-jit' | 'trampoline'; addr: bigint }) => ({ keyId: ed25519KeyId(key.publicKey), signature: signCodeImage(img, placement, key) }) : undefined;
    const r = await k.bpf.load(name, image, signer);
    if (!r.ok) return /refused/.test(r.error) ? denied(r.error) : error(r.error);
    return allowed(`BPF program ${name} JITed at 0x${r.value.va.toString(16)} (${r.value.length} bytes)`);
  }

  #withMode<T>(mode: Mode, f: () => T): T {
    const cpu = this.vmm.bootCpu;
    const old = cpu.cpl;
    cpu.setCpl(mode === 'kernel' ? 0 : 3);
    try {
      return f();
    } finally {
      cpu.setCpl(old);
    }
  }

  async read(addr: AddressExpr, len: number, mode: Mode): Promise<StepOutcome> {
    const a = this.resolve(addr);
    if (!a.ok) return error(a.error);
    const r = this.#withMode(mode, () => this.vmm.bootCpu.read(a.value, len));
    return r.ok ? allowed(`read ${Buffer.from(r.value).toString('hex')}`) : denied(describeFault(r.fault));
  }

  async write(addr: AddressExpr, bytes: Uint8Array, mode: Mode): Promise<StepOutcome> {
    const a = this.resolve(addr);
    if (!a.ok) return error(a.error);
    return fromOutcome(this.#withMode(mode, () => this.vmm.bootCpu.write(a.value, bytes)), `wrote ${bytes.length} byte(s)`);
  }

  async exec(addr: AddressExpr, mode: Mode): Promise<StepOutcome> {
    const a = this.resolve(addr);
    if (!a.ok) return error(a.error);
    return fromOutcome(this.#withMode(mode, () => this.vmm.bootCpu.fetch(a.value, 1)), 'instruction fetched');
  }

  async writeCr(cr: 0 | 3 | 4, change: { value?: bigint; set?: bigint; clear?: bigint }): Promise<StepOutcome> {
    const cpu = this.vmm.bootCpu;
    const value = change.value ?? ((cpu.readCr(cr) | (change.set ?? 0n)) & ~(change.clear ?? 0n));
    return fromOutcome(cpu.writeCr(cr, value), `CR${cr} = 0x${value.toString(16)}`);
  }

  async writeMsr(msr: number, value: bigint): Promise<StepOutcome> {
    return fromOutcome(this.vmm.bootCpu.wrmsr(msr, value), `MSR 0x${msr.toString(16)} = 0x${value.toString(16)}`);
  }

  async reboot(): Promise<StepOutcome> {
    return lifecycle.reboot(this.internals);
  }

  async kexec(options: KexecOptions): Promise<StepOutcome> {
    return lifecycle.kexec(this.internals, options);
  }

  async panic(): Promise<StepOutcome> {
    return lifecycle.panic(this.internals);
  }

  async hibernate(): Promise<StepOutcome> {
    return lifecycle.hibernateStep(this.internals);
  }

  async resume(options: { tamper?: boolean } = {}): Promise<StepOutcome> {
    return lifecycle.resumeStep(this.internals, options);
  }

  async migrate(options: { tamper?: boolean } = {}): Promise<StepOutcome> {
    return lifecycle.migrateStep(this.internals, options);
  }

  async cpuOnline(): Promise<StepOutcome> {
    const k = this.#needKernel();
    if (!(k instanceof GuestKernel)) return k;
    // The VMM first (it tells the verifier), then the guest's CPU bring-up.
    const r = await this.vmm.cpuOnline();
    if (!r.ok) return error(`cpu-online: ${r.error}`);
    const online = `CPU ${r.value - 1} online (${r.value} of ${this.vmm.cpuModel.possibleCpus} possible)`;
    const s = await k.smp.enableSmp();
    if (!s.ok) return denied(`${online}, but the lock-prefix restore was refused: ${s.reason}`);
    if (!s.uniprocPatched) return allowed(`${online}; boot kept the lock prefixes (not patched to UP): nothing to restore`, { online: r.value, restored: 0 });
    return allowed(`${online}; alternatives_enable_smp restored ${s.restored} lock prefix(es) in ${s.batches} batch(es)`, { online: r.value, restored: s.restored });
  }

  async saveMemory(addr: AddressExpr, len: number, out: string): Promise<StepOutcome> {
    if (!Number.isSafeInteger(len) || len < 1 || len > SAVE_MEMORY_MAX) return error(`save-memory len ${len} is not 1..${SAVE_MEMORY_MAX}`);
    const a = this.resolve(addr);
    if (!a.ok) return error(a.error);
    const bytes = this.vmm.readGuestVirtual(a.value, len);
    if (!bytes.ok) return error(`cannot read ${len} bytes at ${addr}: ${bytes.error}`);
    try {
      writeFileSync(out, bytes.value);
    } catch (e) {
      return error(`cannot write ${out}: ${(e as Error).message}`);
    }
    return allowed(`saved ${len} bytes at 0x${a.value.toString(16)} to ${out}`, { bytes: len, sha256: createHash('sha256').update(bytes.value).digest('hex') });
  }

  async hypercall(nr: number, args: readonly bigint[]): Promise<StepOutcome> {
    const [a0 = 0n, a1 = 0n, a2 = 0n, a3 = 0n] = args;
    const ret = await this.vmm.bootCpu.vmcall(nr, a0, a1, a2, a3);
    return ret >= 0 ? allowed(`hypercall ${nr} returned ${ret}`) : denied(`hypercall ${nr} returned ${statusName(ret)}`);
  }

  resolve(addr: AddressExpr): { ok: true; value: bigint } | { ok: false; error: string } {
    const r = resolveSymbolExpression(this.image.systemMap, addr);
    if (r.ok) return r;
    // Module exports: `symbol[+off]`.
    const m = /^\s*([A-Za-z_.$][\w.$]*)\s*(?:([+-])\s*(0x[0-9a-fA-F]+|[0-9]+))?\s*$/.exec(addr);
    if (m && this.#kernel) {
      const base = this.#kernel.modules.resolve(m[1]!);
      if (base !== undefined) {
        const off = m[3] ? BigInt(m[3]) : 0n;
        return { ok: true, value: m[2] === '-' ? base - off : base + off };
      }
    }
    return { ok: false, error: r.error.message };
  }

  /** The guest-physical map with its EPT permissions (runtime/inspection.ts). */
  inspect(): MachineInspection {
    return inspectVm(this.vmm, this.image, this.#kernel);
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    await this.link.dispose();
    this.audit.close();
  }

  /** A base name for a path, for reports. */
  static moduleLabel(path: string): string {
    return basename(path).replace(/\.ko$/, '');
  }
}
