/**
 * Saving a whole VM into a signed state image (shared/vm-image.ts) and putting one back: the
 * common part of hibernation (hibernate.ts) and migration (runtime/lifecycle/migration.ts).
 *
 * Sections the VMM writes:
 * - `core`: the core's protection state and the vCPUs' registers (VmCore.saveState: pins, MSR
 *   and CR filters, Heki exit masks, EPT attributes with IMMUTABLE, shared frames, the
 *   authenticator's module and code records and trusted code map);
 * - `memory`: every resident guest page, copied out through the VMM's named host copy path
 *   (`snapshot` for hibernation, `migration` for a migration), raw-deflated;
 * - `verifier`: the verifier's per-VM state (exportVm), which only the verifier reads back;
 * - `vmm`: what the VMM itself holds for the VM: whether it pinned the platform state, the
 *   verified kexec and crash kernels it staged, its CPU model and the CPUs online;
 * - and whatever the caller adds (the guest kernel's bookkeeping, a migration's platform).
 *
 * Putting an image back ({@link applyVmImage}) happens only after the verifier allowed it
 * (`restore-state`), into a VM the VMM has just reset: the VM's memory, then every
 * protection, all before a vCPU runs.
 */
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { type Result, err, ok } from '../../../shared/result.ts';
import { decodeStructured, encodeStructured, encodeVmImage, type VmImage, type VmImageKind } from '../../../shared/vm-image.ts';
import type { CoreState } from '../../core/core-state.ts';
import type { KexecSlot, VerifiedKexecImage } from '../../exits/exit.ts';
import type { HostCopyPath } from '../host-memory.ts';
import type { Vmm } from '../vmm.ts';
import { type CpuModel, validateCpuModel } from '../../../shared/x86/cpu-model.ts';

/** What the `vmm` section holds. */
interface VmmSection {
  readonly platformPinned: boolean;
  readonly staged: ReadonlyArray<[KexecSlot, VerifiedKexecImage]>;
  /** The VM's CPU model and the CPUs online when it was saved: VM configuration, restored with it. */
  readonly cpu: { readonly model: CpuModel; readonly online: number };
}

const PAGE = 4096;
/** Largest memory section, inflated: 4 GiB, zlib's limit (a bound against a deflate bomb). */
const MEMORY_MAX = 2 ** 32;

/** The host copy path each image kind uses. */
export function copyPathFor(kind: VmImageKind): HostCopyPath {
  return kind === 'hibernate' ? 'snapshot' : 'migration';
}

/**
 * The VM as a signed image. The VM must not run meanwhile (the caller parked or stopped it).
 * Refused, naming why, while a verification is in flight, when the verifier cannot export
 * its state, or when a page is private (protected-memory mode: the VMM cannot read it).
 */
export async function captureVmImage(vmm: Vmm, kind: VmImageKind, extra: ReadonlyArray<{ name: string; bytes: Uint8Array }> = []): Promise<Result<Uint8Array, string>> {
  const saved = vmm.core.saveState();
  if (!saved.ok) return err(saved.error.message);
  const auth = vmm.core.auth;
  let verifier: unknown;
  if (auth) {
    if (!auth.port.exportVm) return err('the verifier link cannot export the VM state (no exportVm)');
    verifier = await auth.port.exportVm(auth.vm);
  }
  const path = copyPathFor(kind);
  const frames = vmm.core.memory.residentFrames();
  const raw = new Uint8Array(4 + frames.length * 4 + frames.length * PAGE);
  const dv = new DataView(raw.buffer);
  dv.setUint32(0, frames.length, true);
  for (const [i, f] of frames.entries()) {
    dv.setUint32(4 + i * 4, f, true);
    const page = vmm.hostMemory.copyFromGuest(path, BigInt(f) * BigInt(PAGE), PAGE);
    if (!page.ok) return err(`cannot copy guest memory: ${page.error.message}`);
    raw.set(page.value, 4 + frames.length * 4 + i * PAGE);
  }
  const vmmSection: VmmSection = { cpu: { model: vmm.cpuModel, online: vmm.onlineCpus }, platformPinned: vmm.platformPinned, staged: (['kexec', 'crash'] as const).flatMap((s) => (vmm.staged(s) ? [[s, vmm.staged(s)!] as [KexecSlot, VerifiedKexecImage]] : [])) };
  const id = vmm.identity;
  const image = encodeVmImage(
    { kind, vm: id.vm, vmId: id.vmId },
    [
      { name: 'core', bytes: encodeStructured(saved.value) },
      { name: 'memory', bytes: new Uint8Array(deflateRawSync(raw, { level: 1 })) },
      { name: 'verifier', bytes: encodeStructured(verifier) },
      { name: 'vmm', bytes: encodeStructured(vmmSection) },
      ...extra,
    ],
    vmm.imageSigner,
  );
  return ok(image);
}

/** The pages of a memory section: frame numbers and a view of each page. */
function decodeMemory(section: Uint8Array): Result<{ frames: number[]; pages: Uint8Array }, string> {
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(inflateRawSync(section, { maxOutputLength: MEMORY_MAX }));
  } catch (e) {
    return err(`the memory section does not inflate: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (raw.length < 4) return err('the memory section is empty');
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = dv.getUint32(0, true);
  if (raw.length !== 4 + n * 4 + n * PAGE) return err(`the memory section's length does not match its ${n} pages`);
  const frames = Array.from({ length: n }, (_, i) => dv.getUint32(4 + i * 4, true));
  return ok({ frames, pages: raw.subarray(4 + n * 4) });
}

/**
 * Puts a checked image back into `vmm`'s VM, which the caller reset and whose verifier
 * allowed the image: memory through the host copy path, then the core's protection state
 * (under the kernel regions it was saved with), the VMM's own state. Nothing of the image
 * runs before this returns. Errors name the section; the caller stops the VM on one.
 */
export function applyVmImage(vmm: Vmm, image: VmImage): Result<{ pages: number }, string> {
  const sec = (name: string): Result<Uint8Array, string> => {
    const s = image.sections.get(name);
    return s ? ok(s) : err(`the image has no ${name} section`);
  };
  const coreBytes = sec('core');
  const memBytes = sec('memory');
  const vmmBytes = sec('vmm');
  if (!coreBytes.ok) return coreBytes;
  if (!memBytes.ok) return memBytes;
  if (!vmmBytes.ok) return vmmBytes;
  const core = decodeStructured(coreBytes.value);
  if (!core.ok) return err(`core section: ${core.error}`);
  const state = core.value as CoreState;
  const vmmState = decodeStructured(vmmBytes.value);
  if (!vmmState.ok) return err(`vmm section: ${vmmState.error}`);
  const mem = decodeMemory(memBytes.value);
  if (!mem.ok) return mem;

  const auth = vmm.core.auth;
  if (state.auth && auth) {
    // The regions the state was saved under (a kexec'd kernel's, perhaps): the core trusts
    // only its own records of where kernel text is.
    vmm.core.attachVerifier({ port: auth.port, vm: auth.vm, audit: auth.audit, kernelRegions: state.auth.kernelRegions });
  }
  const path = copyPathFor(image.header.kind);
  for (const [i, f] of mem.value.frames.entries()) {
    const w = vmm.hostMemory.copyToGuest(path, BigInt(f) * BigInt(PAGE), mem.value.pages.subarray(i * PAGE, (i + 1) * PAGE));
    if (!w.ok) return err(`cannot restore guest memory: ${w.error.message}`);
  }
  const loaded = vmm.core.loadState(state);
  if (!loaded.ok) return err(`core section: ${loaded.error.message}`);
  const v = vmmState.value as VmmSection;
  const cpu = cpuOfVmmSection(v);
  if (!cpu.ok) return err(`vmm section: ${cpu.error}`);
  if (!sameCpuModel(cpu.value.model, vmm.cpuModel)) return err(`vmm section: the image was saved on CPU model ${cpu.value.model.name}, this VM runs ${vmm.cpuModel.name}`);
  const online = vmm.restoreOnlineCpus(cpu.value.online);
  if (!online.ok) return err(`vmm section: ${online.error}`);
  vmm.markPlatformPinned(v.platformPinned === true);
  for (const [slot, img] of v.staged ?? []) vmm.restageKexec(slot, img);
  return ok({ pages: mem.value.frames.length });
}

/** The CPU model and online count of a decoded `vmm` section, checked. */
function cpuOfVmmSection(v: unknown): Result<{ model: CpuModel; online: number }, string> {
  const cpu = (v as { cpu?: { model?: unknown; online?: unknown } } | null)?.cpu;
  if (typeof cpu !== 'object' || cpu === null) return err('no CPU model (an image made before CPU models were VM configuration)');
  const model = validateCpuModel(cpu.model);
  if (!model.ok) return model;
  if (typeof cpu.online !== 'number') return err('the CPUs online are not a number');
  return ok({ model: model.value, online: cpu.online });
}

/**
 * The CPU model and CPUs online an image's VM ran with (its `vmm` section), for a VMM that
 * is about to be built for it (a migration's destination). The image must be checked first.
 */
export function imageCpu(image: VmImage): Result<{ model: CpuModel; online: number }, string> {
  const s = image.sections.get('vmm');
  if (!s) return err('the image has no vmm section');
  const d = decodeStructured(s);
  if (!d.ok) return err(`vmm section: ${d.error}`);
  const c = cpuOfVmmSection(d.value);
  return c.ok ? c : err(`vmm section: ${c.error}`);
}

/** Whether two models are the same CPU (every field, the name included). */
function sameCpuModel(a: CpuModel, b: CpuModel): boolean {
  const keys = Object.keys(a) as Array<keyof CpuModel>;
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => (k === 'capabilities' ? a.capabilities.length === b.capabilities.length && a.capabilities.every((w, i) => w === b.capabilities[i]) : a[k] === b[k]));
}
