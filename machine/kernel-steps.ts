/**
 * The steps a running guest kernel carries out (modprobe and rmmod, ftrace, jump labels,
 * static calls, set_memory_*, text_poke, kprobes, the BPF JIT, CPU hotplug), each through
 * the kernel's own code and its Heki requests. A step is `denied` when the hypervisor (or
 * the verifier behind it) refused the request, `error` when the guest could not make one;
 * the guest's results say which as data (guest/heki/refusal.ts), never in their messages.
 */
import { gvaFromRegister } from '../shared/addr.ts';
import type { GuestKernel } from '../guest/kernel/guest-kernel.ts';
import type { SetMemoryOp } from '../guest/mm/kernel-mm.ts';
import { signCodeImage } from '../verifier-vm/signature/code-image.ts';
import { ed25519KeyId } from '../shared/crypto/ed25519.ts';
import type { AddressExpr, FtraceTarget, StepOutcome } from './machine-api.ts';
import type { MachineParts } from './machine-parts.ts';
import { moduleFiles } from './module-files.ts';
import { resolveAddress } from './resolve-address.ts';
import { allowed, denied, describeFault, error, fromGuestError } from './step-outcome.ts';

/** The parts with the kernel that runs on them. */
export type Running = MachineParts & { readonly kernel: GuestKernel };

/** `load-module`: modprobe of the file at `path` (its dependencies from the same folder). */
export async function loadModule(p: Running, path: string): Promise<StepOutcome> {
  const files = moduleFiles(path);
  if (!files.ok) return error(files.error);
  const { name, source } = files.value;
  const r = await p.kernel.modules.modprobe(name, source);
  if (!r.ok) return fromGuestError(r.error);
  const names = r.value.map((m) => m.name);
  return allowed(names.length ? `loaded ${names.join(', ')}` : `${name} was already loaded`, { modules: names.join(',') });
}

/** `unload-module`. */
export async function unloadModule(p: Running, name: string): Promise<StepOutcome> {
  const r = await p.kernel.modules.unload(name);
  if (!r.ok) return fromGuestError(r.error);
  return allowed(`unloaded ${name}; its pages are data-only`);
}

/** `ftrace`: every selected site patched in batches, or the refusal. */
export async function ftrace(p: Running, op: 'enable' | 'disable', target: FtraceTarget): Promise<StepOutcome> {
  const r = await p.kernel.ftrace.set(op, target);
  if (r.selected === 0) return error(`no traceable function matches "${target}"`);
  if (!r.ok) return denied(r.reason);
  return allowed(`${op}d tracing of ${r.selected} site(s): ${r.patches} patched in ${r.batches} batch(es)`, { selected: r.selected, patched: r.patches });
}

/** `jump-label`: a key without jump labels is an `error`, a refused patch `denied`. */
export async function jumpLabel(p: Running, op: 'enable' | 'disable', key: AddressExpr): Promise<StepOutcome> {
  const a = resolveAddress(p, key);
  if (!a.ok) return error(a.error);
  const r = await p.kernel.jumpLabels.set(a.value, op === 'enable');
  if (!r.ok) return r.entries === 0 ? error(r.reason) : denied(r.reason);
  return allowed(`${op}d static key ${key}: ${r.patches} of ${r.entries} jump label(s) patched`);
}

/** `static-call`: static_call_update(key, target or NULL). */
export async function staticCall(p: Running, key: AddressExpr, target: AddressExpr | null): Promise<StepOutcome> {
  const k = p.kernel;
  const a = resolveAddress(p, key);
  if (!a.ok) return error(a.error);
  const info = k.staticCalls.key(a.value);
  if (!info) return error(`${key} (0x${a.value.toString(16)}) is not a static call key (a __SCK__<name> symbol)`);
  let func: bigint | null = null;
  if (target !== null) {
    const t = resolveAddress(p, target);
    if (!t.ok) return error(t.error);
    func = t.value;
  }
  const r = await k.staticCalls.update(info.key, func);
  const what = `static_call_update(${info.name}, ${target ?? 'NULL'})`;
  if (!r.ok) return r.stage === 'guest' ? error(`${what}: ${r.reason}`) : denied(r.reason);
  return allowed(`${what}: the trampoline and ${r.sites} site(s) patched in ${r.batches} batch(es)`, { sites: r.sites, patched: r.patches });
}

/** `set-memory`: set_memory_<perm> of the pages from `addr` (rounded down to its page). */
export async function setMemory(p: Running, addr: AddressExpr, pages: number, perm: SetMemoryOp): Promise<StepOutcome> {
  const a = resolveAddress(p, addr);
  if (!a.ok) return error(a.error);
  const va = a.value & ~0xfffn;
  const r = await p.kernel.mm.setMemory(va, pages, perm);
  if (!r.ok) return r.refused ? denied(r.reason) : error(r.reason);
  return allowed(`set_memory_${perm}(0x${va.toString(16)}, ${pages})`);
}

/** `text-poke`: one patch of the current bytes at `addr` through the authenticated path. */
export async function textPoke(
  p: Running,
  addr: AddressExpr,
  bytes: Uint8Array,
  kind: 'ftrace' | 'jump-label' | 'static-call' | 'kprobe',
): Promise<StepOutcome> {
  const a = resolveAddress(p, addr);
  if (!a.ok) return error(a.error);
  const cur = p.kernel.cpu.read(gvaFromRegister(a.value), bytes.length);
  if (!cur.ok) return error(`cannot read the current bytes at ${addr}: ${describeFault(cur.fault)}`);
  const r = await p.kernel.poker.poke([{ kind, site: a.value, oldBytes: cur.value, newBytes: bytes }]);
  return r.ok ? allowed(`poked ${bytes.length} byte(s) at ${addr}`) : denied(r.reason);
}

/** `kprobe`: install or remove a probe at `addr`. */
export async function kprobe(p: Running, addr: AddressExpr, op: 'install' | 'remove'): Promise<StepOutcome> {
  const a = resolveAddress(p, addr);
  if (!a.ok) return error(a.error);
  const r = op === 'install' ? await p.kernel.kprobes.install(a.value) : await p.kernel.kprobes.remove(a.value);
  return r.ok ? allowed(`kprobe ${op === 'install' ? 'installed' : 'removed'} at ${addr}`) : denied(r.reason);
}

/** `bpf-jit`: the image JITed into the pack area, signed with the machine's code key unless `signed` is false. */
export async function bpfJit(p: Running, name: string, image: Uint8Array, signed: boolean): Promise<StepOutcome> {
  const key = p.codeSigner;
  const signer = signed
    ? (img: Uint8Array, placement: { what: 'bpf-jit' | 'trampoline'; addr: bigint }) => ({
        keyId: ed25519KeyId(key.publicKey),
        signature: signCodeImage(img, placement, key),
      })
    : undefined;
  const r = await p.kernel.bpf.load(name, image, signer);
  if (!r.ok) return fromGuestError(r.error);
  return allowed(`BPF program ${name} JITed at 0x${r.value.va.toString(16)} (${r.value.length} bytes)`);
}

/** `cpu-online`: the VMM brings a vCPU online (telling the verifier), then the guest restores its lock prefixes. */
export async function cpuOnline(p: Running): Promise<StepOutcome> {
  const r = await p.vmm.cpuOnline();
  if (!r.ok) return error(`cpu-online: ${r.error}`);
  const online = `CPU ${r.value - 1} online (${r.value} of ${p.vmm.cpuModel.possibleCpus} possible)`;
  const s = await p.kernel.smp.enableSmp();
  if (!s.ok) return denied(`${online}, but the lock-prefix restore was refused: ${s.reason}`);
  if (!s.uniprocPatched) return allowed(`${online}; boot kept the lock prefixes (not patched to UP): nothing to restore`, { online: r.value, restored: 0 });
  return allowed(`${online}; alternatives_enable_smp restored ${s.restored} lock prefix(es) in ${s.batches} batch(es)`, {
    online: r.value,
    restored: s.restored,
  });
}
