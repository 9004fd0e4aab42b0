/**
 * The lifecycle steps of a simulated machine (MachineApi `reboot`, `kexec`, `panic`,
 * `hibernate`, `resume`, `migrate`): the guest kernel asks the way Linux does
 * (guest/kernel/lifecycle.ts), the VMM decides and carries the event out
 * (hypervisor/vmm/lifecycle/), and the runtime boots or rebuilds the guest kernel on the
 * result. Each step reports `allowed` with what happened, `denied` when a protection refused
 * it (the verifier, the VMM), `error` when it could not be tried, and returns the parts the
 * machine goes on with when it changed them (machine/machine-parts.ts): the kernel that runs
 * now or none, the image it runs, after a migration the destination's VMM and verifier.
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
import { decodeVmImage } from '../../shared/vm-image.ts';
import { decodeSection, encodeSection } from '../../shared/state-section.ts';
import { GUEST_SECTION } from '../../guest/kernel/guest-state-schema.ts';
import type { Vmm } from '../../hypervisor/vmm/vmm.ts';
import { carryOutSystemEvent, type LifecycleOutcome } from '../../hypervisor/vmm/lifecycle/system-events.ts';
import { RESUME_SECTOR, resume } from '../../hypervisor/vmm/lifecycle/hibernate.ts';
import { bzImageKernelName, signManifest } from '../../tools/manifest-builder.ts';
import { manifestBodyFor } from '../manifest-cache.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { restoreGuestKernel, saveGuestKernel } from '../../guest/kernel/guest-state.ts';
import type { KexecOptions, StepOutcome } from '../machine-api.ts';
import { type MachineParts, type StepResult, withoutKernel } from '../machine-parts.ts';
import { bootGuest } from '../guest-boot.ts';
import { allowed, denied, error, NOT_BOOTED } from '../step-outcome.ts';
import type { MachineHost } from './machine-host.ts';
import { restoreVm, snapshotVm } from './migration.ts';

const NO_HOST = error('this machine was built without its host side (machine/machine.ts keeps it): no lifecycle');

/** Kernel images loaded from files, by path pair (a KernelImage is never written to). */
const images = new Map<string, Promise<Result<KernelImage, string>>>();

function imageFor(p: MachineParts, host: MachineHost, vmlinuz: string, systemMap: string): Promise<Result<KernelImage, string>> {
  if (vmlinuz === host.vmlinuzPath && systemMap === host.systemMapPath) return Promise.resolve(ok(p.bootImage));
  const key = `${vmlinuz}\0${systemMap}`;
  let loading = images.get(key);
  if (!loading) {
    loading = loadKernelImage({ vmlinuzPath: vmlinuz, systemMapPath: systemMap }).then((r) => (r.ok ? ok(r.value) : err(r.error.message)));
    images.set(key, loading);
  }
  return loading;
}

/** What the guest's request did: the VMM accepted it (the VM is parked), refused it, or a fault. */
function requested(r: GuestOutcome<void>, what: string): StepOutcome | undefined {
  if (r.ok) return denied(`the VMM refused the ${what} (its policy answered inject): the kernel runs on with every protection`);
  if (r.fault.kind !== 'stopped') return denied(`the ${what} request faulted: #${r.fault.vector} (${r.fault.cause}): ${r.fault.detail}`);
  return undefined;
}

/** After the VMM reset the VM into a kernel (`p` runs none yet): boot it and report both. */
async function bootAfter(p: MachineParts, detail: string): Promise<StepResult> {
  const b = await bootGuest(p);
  const o = b.outcome;
  return {
    outcome: o.outcome === 'allowed' ? allowed(`${detail}; then booted: ${o.reason}`) : { ...o, reason: `${detail}; then the boot failed: ${o.reason}` },
    next: b.next ?? p,
  };
}

/** `reboot`. */
export async function reboot(p: MachineParts): Promise<StepResult> {
  const k = p.kernel;
  if (!k) return { outcome: NOT_BOOTED };
  const refused = requested(k.lifecycle.reboot(), 'reset');
  if (refused) return { outcome: refused };
  const out = await carryOutSystemEvent(p.vmm);
  const reset = withoutKernel(p, p.bootImage);
  if (out?.kind !== 'rebooted') return { outcome: error(`the reset was not carried out: ${out?.detail ?? 'nothing was pending'}`), next: reset };
  return bootAfter(reset, out.detail);
}

/** What a system event the guest requested came to, and the parts the machine goes on with. */
export interface SystemEventResult {
  readonly out: LifecycleOutcome;
  readonly next: MachineParts;
}

/**
 * Carries out the system event the guest requested (an attack's own reset request): the
 * running kernel is gone, whatever the guest boots next; `undefined` when none was pending.
 */
export async function pendingSystemEvent(p: MachineParts): Promise<SystemEventResult | undefined> {
  const out = await carryOutSystemEvent(p.vmm);
  return out === undefined ? undefined : { out, next: withoutKernel(p, p.bootImage) };
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
export async function kexec(p: MachineParts, o: KexecOptions): Promise<StepResult> {
  const k = p.kernel;
  if (!k) return { outcome: NOT_BOOTED };
  const host = p.host;
  if (!host) return { outcome: NO_HOST };
  const imagePath = o.image ?? host.vmlinuzPath;
  const mapPath = o.systemMap ?? host.systemMapPath;
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(imagePath));
  } catch (e) {
    return { outcome: error(`cannot read the kexec image ${imagePath}: ${(e as Error).message}`) };
  }
  const newImage = await imageFor(p, host, imagePath, mapPath);
  if (!newImage.ok) return { outcome: error(`the kexec kernel ${imagePath}: ${newImage.error}`) };
  let manifest: string;
  if (o.manifest !== undefined) {
    try {
      manifest = readFileSync(o.manifest, 'utf8');
    } catch (e) {
      return { outcome: error(`cannot read the kexec manifest ${o.manifest}: ${(e as Error).message}`) };
    }
  } else {
    // The vendor's build of the new kernel: its manifest, signed by the host's vendor key
    // (or, for the attack, by a key nobody trusts).
    const name = bzImageKernelName(bytes);
    const body = await manifestBodyFor(newImage.value, {
      kernel: name.ok ? name.value : 'unknown',
      vmlinuzSha256: createHash('sha256').update(bytes).digest('hex'),
    });
    manifest = signManifest(body, o.signer === 'untrusted' ? generateEd25519KeyPair() : host.vendor);
  }
  if (o.tamper === 'image') bytes = flipped(bytes);
  if (o.tamper === 'manifest') manifest = tamperManifest(manifest);
  const slot = o.crash ? 'crash' : 'kexec';
  const fromAudit = p.audit.count;
  const r = await k.lifecycle.kexecLoad(bytes, new TextEncoder().encode(manifest), o.crash === true);
  if (!r.ok) {
    // The guest saw only the status; the verifier's reason is in its verdict record.
    const v = p.audit.since(fromAudit).find((x) => x['kind'] === 'kexec-image');
    return { outcome: denied(`${r.reason}${v ? `: ${String(v['reason'])}` : ''}; the running kernel keeps every protection`) };
  }
  if (o.crash) {
    return {
      outcome: allowed(`crash kernel loaded and verified (SHA-256 ${p.vmm.staged('crash')?.sha256 ?? '?'}); it runs only on a panic`),
      next: { ...p, crashImage: newImage.value },
    };
  }
  const s = await k.lifecycle.kexecExec();
  if (!s.ok) return { outcome: denied(`the hypervisor refused to run the ${slot} kernel: ${s.name}`) };
  const out = await carryOutSystemEvent(p.vmm);
  if (out?.kind !== 'kexeced') return { outcome: error(`kexec was not carried out: ${out?.detail ?? 'nothing was pending'}`), next: withoutKernel(p) };
  return bootAfter(withoutKernel(p, newImage.value), out.detail);
}

/** `panic`: the VMM boots the crash kernel `kexec -p` loaded, or stops the VM. */
export async function panic(p: MachineParts): Promise<StepResult> {
  const k = p.kernel;
  if (!k) return { outcome: NOT_BOOTED };
  const r = k.lifecycle.panic();
  if (r.ok) return { outcome: allowed('the VMM ignored the panic notification (its policy): the kernel runs on') };
  if (r.fault.kind !== 'stopped') return { outcome: denied(`the panic notification faulted: ${r.fault.detail}`) };
  const out = await carryOutSystemEvent(p.vmm);
  const { crashImage, ...rest } = p;
  if (out?.kind === 'kexeced') return bootAfter(withoutKernel(rest, crashImage ?? p.bootImage), `panic: ${out.detail}`);
  return { outcome: allowed(`panic: ${out?.detail ?? 'nothing was carried out'}`), next: withoutKernel(p) };
}

/** `hibernate`. */
export async function hibernateStep(p: MachineParts): Promise<StepResult> {
  const k = p.kernel;
  if (!k) return { outcome: NOT_BOOTED };
  const refused = requested(k.lifecycle.sleep('S4'), 'S4 (hibernation)');
  if (refused) return { outcome: refused };
  const out = await carryOutSystemEvent(p.vmm, { guestState: encodeSection(GUEST_SECTION, saveGuestKernel(k)) });
  if (out?.kind === 'hibernated') return { outcome: allowed(`hibernated: ${out.detail}`), next: withoutKernel(p) };
  if (out?.kind === 'refused') return { outcome: denied(out.detail) };
  return { outcome: error(`hibernation: ${out?.detail ?? 'nothing was pending'}`), next: withoutKernel(p) };
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
export async function resumeStep(p: MachineParts, o: { readonly tamper?: boolean }): Promise<StepResult> {
  if (p.kernel) return { outcome: error('the VM is running: hibernate it first') };
  if (o.tamper) {
    const t = tamperDiskImage(p.vmm);
    if (!t.ok) return { outcome: error(t.error) };
  }
  const r = await resume(p.vmm);
  if (!r.ok)
    return { outcome: r.error.kind === 'no-image' ? error(r.error.message) : denied(`resume refused (${r.error.kind}): ${r.error.message}; the VM stays off`) };
  const state = decodeSection(GUEST_SECTION, r.value.guest);
  if (!state.ok) return { outcome: error(`the guest kernel's state: ${state.error}`) };
  const k = restoreGuestKernel(p.vmm.bootCpu, p.image, state.value);
  if (!k.ok) return { outcome: error(k.error) };
  return { outcome: allowed(r.value.detail), next: { ...p, kernel: k.value } };
}

/** `migrate`. */
export async function migrateStep(p: MachineParts, o: { readonly tamper?: boolean }): Promise<StepResult> {
  const k = p.kernel;
  if (!k) return { outcome: NOT_BOOTED };
  const host = p.host;
  if (!host) return { outcome: NO_HOST };
  const snap = await snapshotVm(p.vmm, k, host, p.audit);
  if (!snap.ok) return { outcome: denied(`the source VMM cannot take a snapshot: ${snap.error}`) };
  let bytes = snap.value;
  if (o.tamper) {
    const d = decodeVmImage(bytes);
    const mem = d.ok ? d.value.sections.get('memory') : undefined;
    bytes = flipped(bytes, mem ? mem.byteOffset + (mem.length >> 1) : bytes.length >> 1);
  }
  const source = p.vmm.identity;
  const dest = await restoreVm(bytes, {
    trust: source.publicKey,
    image: p.image,
    bootImage: p.bootImage,
    host,
    audit: p.audit,
  });
  if (!dest.ok) return { outcome: denied(`the destination refused the snapshot (${dest.error.kind}): ${dest.error.message}; the source VM runs on`) };
  p.vmm.core.stop(`migrated: the VM runs on at the destination (snapshot of ${bytes.length} bytes)`);
  const d = dest.value;
  const c = d.vmm.core;
  // The destination's VMM, verifier, kernel and host side; the machine disposes of the source's verifier.
  // The crash kernel's image stays behind: it was the source VMM's staged kernel.
  const { crashImage: _left, ...rest } = p;
  return {
    outcome: allowed(
      `migrated into a fresh VM: snapshot of ${bytes.length} bytes signed by vmm key ${source.keyId}; CR0/CR4 pins 0x${c.pins.get(0).toString(16)}/0x${c.pins.get(4).toString(16)}, ` +
        `${c.ept.entries().length} locked frames, ${c.auth?.modules.size ?? 0} verified module(s) re-applied before the guest ran`,
    ),
    next: { ...rest, vmm: d.vmm, link: d.link, image: d.image, kernel: d.kernel, host: d.host },
  };
}
