/**
 * The lifecycle steps of a simulated machine (MachineApi `reboot`, `kexec`, `panic`,
 * `hibernate`, `resume`, `migrate`): the guest kernel asks the way Linux does
 * (guest/kernel/lifecycle.ts), the VMM decides and carries the event out
 * (hypervisor/vmm/lifecycle/), and the runtime boots or rebuilds the guest kernel on the
 * result. Each step reports `allowed` with what happened, `denied` when a protection refused
 * it (the verifier, the VMM), `error` when it could not be tried.
 *
 * The attacks these steps model (a tampered kexec image or manifest, an untrusted signer, a
 * modified hibernation image, a snapshot changed in transit) are options of the steps, so a
 * scenario can expect them to be denied.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { GuestOutcome } from '../../shared/guest-cpu.ts';
import { loadKernelImage } from '../../shared/kernel-image/load-kernel.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { decodeStructured, decodeVmImage, encodeStructured } from '../../shared/vm-image.ts';
import type { Vmm } from '../../hypervisor/vmm/vmm.ts';
import type { VerifierLink } from '../../hypervisor/verifier-link/verifier-link.ts';
import { carryOutSystemEvent } from '../../hypervisor/vmm/lifecycle/system-events.ts';
import { RESUME_SECTOR, resume } from '../../hypervisor/vmm/lifecycle/hibernate.ts';
import type { AuditLog } from '../../hypervisor/audit/audit-log.ts';
import { bzImageKernelName, buildManifestBody, signManifest } from '../../tools/manifest-builder.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import type { GuestKernel } from '../../guest/kernel/guest-kernel.ts';
import { restoreGuestKernel, saveGuestKernel, type GuestKernelState } from '../../guest/kernel/guest-state.ts';
import type { KexecOptions, StepOutcome } from '../machine-api.ts';
import type { SimulatedMachineParts } from '../simulated-machine.ts';
import type { MachineSwap } from './machine-host.ts';
import { restoreVm, snapshotVm } from './migration.ts';

/** What the lifecycle steps see of a machine. */
export interface MachineInternals {
  readonly vmm: Vmm;
  readonly link: VerifierLink;
  readonly audit: AuditLog;
  /** The image the guest runs now. */
  readonly image: KernelImage;
  readonly kernel: GuestKernel | undefined;
  readonly parts: SimulatedMachineParts;
  /** Records the running guest kernel (undefined: none) and, when given, the image it runs. */
  setKernel(k: GuestKernel | undefined, image?: KernelImage): void;
  /** Boots the guest kernel on the VM as it is (the VMM loaded the segments). */
  bootGuest(): Promise<StepOutcome>;
  /** Goes on as the destination VM of a migration (the source's verifier is disposed). */
  swap(to: MachineSwap): Promise<void>;
}

const allowed = (reason: string): StepOutcome => ({ outcome: 'allowed', reason });
const denied = (reason: string): StepOutcome => ({ outcome: 'denied', reason });
const error = (reason: string): StepOutcome => ({ outcome: 'error', reason });
const NOT_BOOTED = error('the kernel is not booted (add a boot step first)');
const NO_HOST = error('this machine was built without its host side (runtime/machine.ts keeps it): no lifecycle');

/** Crash kernels loaded per VMM: the image the guest boots if it panics. */
const crashImages = new WeakMap<Vmm, KernelImage>();
/** Kernel images loaded from files, by path pair (a KernelImage is never written to). */
const images = new Map<string, Promise<Result<KernelImage, string>>>();

function imageFor(mi: MachineInternals, vmlinuz: string, systemMap: string): Promise<Result<KernelImage, string>> {
  const host = mi.parts.host!;
  if (vmlinuz === host.vmlinuzPath && systemMap === host.systemMapPath) return Promise.resolve(ok(mi.parts.image));
  const key = `${vmlinuz}\0${systemMap}`;
  let p = images.get(key);
  if (!p) {
    p = loadKernelImage({ vmlinuzPath: vmlinuz, systemMapPath: systemMap }).then((r) => (r.ok ? ok(r.value) : err(r.error.message)));
    images.set(key, p);
  }
  return p;
}

/** What the guest's request did: the VMM accepted it (the VM is parked), refused it, or a fault. */
function requested(r: GuestOutcome<void>, what: string): StepOutcome | undefined {
  if (r.ok) return denied(`the VMM refused the ${what} (its policy answered inject): the kernel runs on with every protection`);
  if (r.fault.kind !== 'stopped') return denied(`the ${what} request faulted: #${r.fault.vector} (${r.fault.cause}): ${r.fault.detail}`);
  return undefined;
}

/** After the VMM reset the VM into a kernel: boot it and report both. */
async function bootAfter(mi: MachineInternals, detail: string): Promise<StepOutcome> {
  const b = await mi.bootGuest();
  return b.outcome === 'allowed' ? allowed(`${detail}; then booted: ${b.reason}`) : { ...b, reason: `${detail}; then the boot failed: ${b.reason}` };
}

/** `reboot`. */
export async function reboot(mi: MachineInternals): Promise<StepOutcome> {
  const k = mi.kernel;
  if (!k) return NOT_BOOTED;
  const refused = requested(k.lifecycle.reboot(), 'reset');
  if (refused) return refused;
  const out = await carryOutSystemEvent(mi.vmm);
  mi.setKernel(undefined, mi.parts.image);
  if (out?.kind !== 'rebooted') return error(`the reset was not carried out: ${out?.detail ?? 'nothing was pending'}`);
  return bootAfter(mi, out.detail);
}

/** Flips one byte in the middle of `b` (a copy). */
function flipped(b: Uint8Array, at = b.length >> 1): Uint8Array {
  const c = Uint8Array.from(b);
  c[at] = (c[at] as number) ^ 0x01;
  return c;
}

/** One hex digit of the manifest body's vmlinuzSha256 changed: one byte of the file flipped, JSON still valid. */
function tamperManifest(text: string): string {
  const at = text.indexOf('vmlinuzSha256');
  const i = at < 0 ? -1 : text.slice(at).search(/[0-9a-f]{64}/);
  if (i < 0) return text.slice(0, text.length >> 1) + String.fromCharCode(text.charCodeAt(text.length >> 1) ^ 1) + text.slice((text.length >> 1) + 1);
  const pos = at + i;
  return text.slice(0, pos) + (text[pos] === '0' ? '1' : '0') + text.slice(pos + 1);
}

/** `kexec`: load (verified), then (unless `crash`) run. */
export async function kexec(mi: MachineInternals, o: KexecOptions): Promise<StepOutcome> {
  const k = mi.kernel;
  if (!k) return NOT_BOOTED;
  const host = mi.parts.host;
  if (!host) return NO_HOST;
  const imagePath = o.image ?? host.vmlinuzPath;
  const mapPath = o.systemMap ?? host.systemMapPath;
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(imagePath));
  } catch (e) {
    return error(`cannot read the kexec image ${imagePath}: ${(e as Error).message}`);
  }
  const newImage = await imageFor(mi, imagePath, mapPath);
  if (!newImage.ok) return error(`the kexec kernel ${imagePath}: ${newImage.error}`);
  let manifest: string;
  if (o.manifest !== undefined) {
    try {
      manifest = readFileSync(o.manifest, 'utf8');
    } catch (e) {
      return error(`cannot read the kexec manifest ${o.manifest}: ${(e as Error).message}`);
    }
  } else {
    // The vendor's build of the new kernel: its manifest, signed by the host's vendor key
    // (or, for the attack, by a key nobody trusts).
    const name = bzImageKernelName(bytes);
    const body = buildManifestBody(newImage.value, { kernel: name.ok ? name.value : 'unknown', vmlinuzSha256: createHash('sha256').update(bytes).digest('hex') });
    manifest = signManifest(body, o.signer === 'untrusted' ? generateEd25519KeyPair() : host.vendor);
  }
  if (o.tamper === 'image') bytes = flipped(bytes);
  if (o.tamper === 'manifest') manifest = tamperManifest(manifest);
  const slot = o.crash ? 'crash' : 'kexec';
  const fromAudit = mi.audit.count;
  const r = await k.lifecycle.kexecLoad(bytes, new TextEncoder().encode(manifest), o.crash === true);
  if (!r.ok) {
    const v = mi.audit.since(fromAudit).find((x) => x['kind'] === 'kexec-image');
    return denied(`${r.reason}${v ? `: ${String(v['reason'])}` : ''}; the running kernel keeps every protection`);
  }
  if (o.crash) {
    crashImages.set(mi.vmm, newImage.value);
    return allowed(`crash kernel loaded and verified (SHA-256 ${mi.vmm.staged('crash')?.sha256 ?? '?'}); it runs only on a panic`);
  }
  const s = await k.lifecycle.kexecExec();
  if (!s.ok) return denied(`the hypervisor refused to run the ${slot} kernel: ${s.name}`);
  const out = await carryOutSystemEvent(mi.vmm);
  if (out?.kind !== 'kexeced') {
    mi.setKernel(undefined);
    return error(`kexec was not carried out: ${out?.detail ?? 'nothing was pending'}`);
  }
  mi.setKernel(undefined, newImage.value);
  return bootAfter(mi, out.detail);
}

/** `panic`. */
export async function panic(mi: MachineInternals): Promise<StepOutcome> {
  const k = mi.kernel;
  if (!k) return NOT_BOOTED;
  const r = k.lifecycle.panic();
  if (r.ok) return allowed('the VMM ignored the panic notification (its policy): the kernel runs on');
  if (r.fault.kind !== 'stopped') return denied(`the panic notification faulted: ${r.fault.detail}`);
  const out = await carryOutSystemEvent(mi.vmm);
  if (out?.kind === 'kexeced') {
    mi.setKernel(undefined, crashImages.get(mi.vmm) ?? mi.parts.image);
    crashImages.delete(mi.vmm);
    return bootAfter(mi, `panic: ${out.detail}`);
  }
  mi.setKernel(undefined);
  return allowed(`panic: ${out?.detail ?? 'nothing was carried out'}`);
}

/** `hibernate`. */
export async function hibernateStep(mi: MachineInternals): Promise<StepOutcome> {
  const k = mi.kernel;
  if (!k) return NOT_BOOTED;
  const refused = requested(k.lifecycle.sleep('S4'), 'S4 (hibernation)');
  if (refused) return refused;
  const out = await carryOutSystemEvent(mi.vmm, { guestState: encodeStructured(saveGuestKernel(k)) });
  if (out?.kind === 'hibernated') {
    mi.setKernel(undefined);
    return allowed(`hibernated: ${out.detail}`);
  }
  if (out?.kind === 'refused') return denied(out.detail);
  mi.setKernel(undefined);
  return error(`hibernation: ${out?.detail ?? 'nothing was pending'}`);
}

/** Flips a byte of the memory section of the image at the resume area (the attack on the disk). */
function tamperDiskImage(vmm: Vmm): Result<void, string> {
  const disk = vmm.devices.disk;
  const header = disk.readSectors(RESUME_SECTOR, 1);
  const length = Number(new DataView(header.buffer).getBigUint64(8, true));
  const sectors = Math.ceil(length / 512);
  if (length < 1 || RESUME_SECTOR + 1 + sectors > disk.sectors) return err('there is no hibernation image on the disk to tamper with');
  const image = disk.readSectors(RESUME_SECTOR + 1, sectors);
  const d = decodeVmImage(image.subarray(0, length));
  if (!d.ok) return err(d.error.message);
  const mem = d.value.sections.get('memory')!;
  const at = mem.byteOffset - image.byteOffset + (mem.length >> 1);
  image[at] = (image[at] as number) ^ 0x01;
  disk.writeSectors(RESUME_SECTOR + 1, image);
  return ok(undefined);
}

/** `resume`. */
export async function resumeStep(mi: MachineInternals, o: { readonly tamper?: boolean }): Promise<StepOutcome> {
  if (mi.kernel) return error('the VM is running: hibernate it first');
  if (o.tamper) {
    const t = tamperDiskImage(mi.vmm);
    if (!t.ok) return error(t.error);
  }
  const r = await resume(mi.vmm);
  if (!r.ok) return r.error.kind === 'no-image' ? error(r.error.message) : denied(`resume refused (${r.error.kind}): ${r.error.message}; the VM stays off`);
  const state = decodeStructured(r.value.guest);
  if (!state.ok) return error(`the guest kernel's state: ${state.error}`);
  const k = restoreGuestKernel(mi.vmm.bootCpu, mi.image, state.value as GuestKernelState);
  if (!k.ok) return error(k.error);
  mi.setKernel(k.value);
  return allowed(r.value.detail);
}

/** `migrate`. */
export async function migrateStep(mi: MachineInternals, o: { readonly tamper?: boolean }): Promise<StepOutcome> {
  const k = mi.kernel;
  if (!k) return NOT_BOOTED;
  const host = mi.parts.host;
  if (!host) return NO_HOST;
  const snap = await snapshotVm(mi.vmm, k, host, mi.audit);
  if (!snap.ok) return denied(`the source VMM cannot take a snapshot: ${snap.error}`);
  let bytes = snap.value;
  if (o.tamper) {
    const d = decodeVmImage(bytes);
    const mem = d.ok ? d.value.sections.get('memory') : undefined;
    bytes = flipped(bytes, mem ? mem.byteOffset + (mem.length >> 1) : bytes.length >> 1);
  }
  const source = mi.vmm.identity;
  const dest = await restoreVm(bytes, {
    trust: source.publicKey,
    image: mi.image,
    bootImage: mi.parts.image,
    host,
    audit: mi.audit,
  });
  if (!dest.ok) return denied(`the destination refused the snapshot (${dest.error.kind}): ${dest.error.message}; the source VM runs on`);
  mi.vmm.core.stop(`migrated: the VM runs on at the destination (snapshot of ${bytes.length} bytes)`);
  await mi.swap(dest.value);
  const c = dest.value.vmm.core;
  return allowed(
    `migrated into a fresh VM: snapshot of ${bytes.length} bytes signed by vmm key ${source.keyId}; CR0/CR4 pins 0x${c.pins.get(0).toString(16)}/0x${c.pins.get(4).toString(16)}, ` +
      `${c.ept.entries().length} locked frames, ${c.auth?.modules.size ?? 0} verified module(s) re-applied before the guest ran`,
  );
}
