/**
 * Saving a whole VM into a signed state image (shared/vm-image.ts) and putting one back: the
 * common part of hibernation (hibernate.ts) and migration (machine/lifecycle/migration.ts).
 *
 * Sections the VMM writes:
 * - `core`: the core's protection state and the vCPUs' registers (VmCore.saveState: pins, MSR
 *   and CR filters, Heki exit masks, EPT attributes with IMMUTABLE, shared frames, the
 *   authenticator's module and code records and trusted code map; core-state-schema.ts);
 * - `memory`: every resident guest page, copied out through the VMM's named host copy path
 *   (`snapshot` for hibernation, `migration` for a migration), raw-deflated;
 * - `verifier`: the verifier's per-VM state, which the verifier encodes (exportVmSection) and
 *   alone reads back;
 * - `vmm`: what the VMM itself holds for the VM (vmm-section.ts);
 * - and whatever the caller adds (the guest kernel's bookkeeping, a migration's platform).
 *
 * Every section but memory is JSON of a declared, versioned schema (shared/state-section.ts).
 * Capturing ({@link captureVmState}) and encoding ({@link encodeVmState}) are separate, as are
 * decoding ({@link decodeVmState}) and applying ({@link applyVmState}).
 *
 * Putting an image back ({@link applyVmImage}) happens only after the verifier allowed it
 * (`restore-state`), into a VM the VMM has just reset: the VM's memory, then every
 * protection, all before a vCPU runs.
 */
import { addrErrorMessage, gfnToGpa, isAddrError, tryGfn } from '../../../shared/addr.ts';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { type Result, err, ok } from '../../../shared/result.ts';
import { decodeSection, encodeSection } from '../../../shared/state-section.ts';
import { encodeVmImage, type VmImage, type VmImageKind } from '../../../shared/vm-image.ts';
import { CORE_SECTION } from '../../core/core-state-schema.ts';
import type { CoreState } from '../../core/core-state.ts';
import type { KexecSlot, VerifiedKexecImage } from '../../exits/exit.ts';
import type { HostCopyPath } from '../host-memory.ts';
import type { Vmm } from '../vmm.ts';
import type { CpuModel } from '../../../shared/x86/cpu-model.ts';
import { VMM_SECTION, type VmmSection } from './vmm-section.ts';

const PAGE = 4096;
/** Largest memory section, inflated: 4 GiB, zlib's limit (a bound against a deflate bomb). */
const MEMORY_MAX = 2 ** 32;

/**
 * A VM's state as plain objects, before it is encoded into an image or after it was read
 * from one: what {@link captureVmState} takes and {@link applyVmState} puts back. A VM fork
 * (an in-memory copy) can use these two without encoding anything.
 */
export interface VmStateCapture {
  /** The core's protection state and the vCPUs' registers (VmCore.saveState). */
  readonly core: CoreState;
  /** Every resident guest page: frame numbers, and their pages back to back (4096 bytes each). */
  readonly memory: { readonly frames: readonly number[]; readonly pages: Uint8Array };
  /**
   * The verifier's per-VM state as the verifier encoded it (its `verifier` section: it writes
   * and alone reads it, the VMM carries the bytes); undefined when no verifier is attached.
   */
  readonly verifier: Uint8Array | undefined;
  /** What the VMM itself holds for the VM. */
  readonly vmm: VmmSection;
}

/** The host copy path each image kind uses. */
export function copyPathFor(kind: VmImageKind): HostCopyPath {
  return kind === 'hibernate' ? 'snapshot' : 'migration';
}

/**
 * The VM's state, captured as plain objects. The VM must not run meanwhile (the caller parked
 * or stopped it). Refused, naming why, while a verification is in flight, when the verifier
 * cannot export its state, or when a page is private (protected-memory mode: the VMM cannot
 * read it). Memory is read through the host copy path of `kind`.
 */
export async function captureVmState(vmm: Vmm, kind: VmImageKind): Promise<Result<VmStateCapture, string>> {
  const saved = vmm.core.saveState();
  if (!saved.ok) return err(saved.error.message);
  const auth = vmm.core.auth;
  let verifier: Uint8Array | undefined;
  if (auth) {
    if (!auth.port.exportVmSection) return err('the verifier link cannot export the VM state (no exportVmSection)');
    verifier = await auth.port.exportVmSection(auth.vm);
    if (!verifier) return err('the verifier did not export the VM state (no worker answered)');
  }
  const path = copyPathFor(kind);
  const frames = vmm.core.memory.residentFrames();
  const pages = new Uint8Array(frames.length * PAGE);
  for (const [i, f] of frames.entries()) {
    const page = vmm.hostMemory.copyFromGuest(path, gfnToGpa(f), PAGE);
    if (!page.ok) return err(`cannot copy guest memory: ${page.error.message}`);
    pages.set(page.value, i * PAGE);
  }
  const staged = (['kexec', 'crash'] as const).flatMap((s) => (vmm.staged(s) ? [[s, vmm.staged(s)!] as [KexecSlot, VerifiedKexecImage]] : []));
  return ok({
    core: saved.value,
    memory: { frames, pages },
    verifier,
    vmm: { cpu: { model: vmm.cpuModel, online: vmm.onlineCpus }, platformPinned: vmm.platformPinned, staged },
  });
}

/**
 * A captured state as a signed image of `kind`, with the caller's sections after the VMM's
 * (each section's format: core-state-schema.ts, vmm-section.ts, the memory layout below).
 */
export function encodeVmState(vmm: Vmm, kind: VmImageKind, state: VmStateCapture, extra: ReadonlyArray<{ name: string; bytes: Uint8Array }> = []): Uint8Array {
  const raw = new Uint8Array(4 + state.memory.frames.length * 4 + state.memory.pages.length);
  const dv = new DataView(raw.buffer);
  dv.setUint32(0, state.memory.frames.length, true);
  for (const [i, f] of state.memory.frames.entries()) dv.setUint32(4 + i * 4, f, true);
  raw.set(state.memory.pages, 4 + state.memory.frames.length * 4);
  const id = vmm.identity;
  return encodeVmImage(
    { kind, vm: id.vm, vmId: id.vmId },
    [
      { name: 'core', bytes: encodeSection(CORE_SECTION, state.core) },
      { name: 'memory', bytes: new Uint8Array(deflateRawSync(raw, { level: 1 })) },
      ...(state.verifier ? [{ name: 'verifier', bytes: state.verifier }] : []),
      { name: 'vmm', bytes: encodeSection(VMM_SECTION, state.vmm) },
      ...extra,
    ],
    vmm.imageSigner,
  );
}

/** The VM as a signed image: {@link captureVmState}, then {@link encodeVmState}. */
export async function captureVmImage(
  vmm: Vmm,
  kind: VmImageKind,
  extra: ReadonlyArray<{ name: string; bytes: Uint8Array }> = [],
): Promise<Result<Uint8Array, string>> {
  const state = await captureVmState(vmm, kind);
  return state.ok ? ok(encodeVmState(vmm, kind, state.value, extra)) : state;
}

/**
 * The `memory` section: raw deflate of `u32 n`, n `u32` frame numbers, then the n pages
 * (4096 bytes each) in that order; little-endian.
 */
function decodeMemory(section: Uint8Array): Result<VmStateCapture['memory'], string> {
  let raw: Uint8Array;
  try {
    raw = new Uint8Array(inflateRawSync(section, { maxOutputLength: MEMORY_MAX }));
  } catch (e) {
    return err(`memory section: it does not inflate: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (raw.length < 4) return err('memory section: it is empty');
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const n = dv.getUint32(0, true);
  if (raw.length !== 4 + n * 4 + n * PAGE) return err(`memory section: its length does not match its ${n} pages`);
  const frames = Array.from({ length: n }, (_, i) => dv.getUint32(4 + i * 4, true));
  return ok({ frames, pages: raw.subarray(4 + n * 4) });
}

/** An image's state sections, read and checked against their schemas; errors name the section and field. */
export function decodeVmState(image: VmImage): Result<VmStateCapture, string> {
  const sec = (name: string): Result<Uint8Array, string> => {
    const s = image.sections.get(name);
    return s ? ok(s) : err(`the image has no ${name} section`);
  };
  const coreBytes = sec('core');
  if (!coreBytes.ok) return coreBytes;
  const memBytes = sec('memory');
  if (!memBytes.ok) return memBytes;
  const vmmBytes = sec('vmm');
  if (!vmmBytes.ok) return vmmBytes;
  const core = decodeSection(CORE_SECTION, coreBytes.value);
  if (!core.ok) return core;
  const vmmState = decodeSection(VMM_SECTION, vmmBytes.value);
  if (!vmmState.ok) return vmmState;
  const memory = decodeMemory(memBytes.value);
  if (!memory.ok) return memory;
  return ok({ core: core.value, memory: memory.value, verifier: image.sections.get('verifier'), vmm: vmmState.value });
}

/**
 * Puts a captured state back into `vmm`'s VM, which the caller reset and whose verifier
 * allowed it: memory through the host copy path of `kind`, then the core's protection state
 * (under the kernel regions it was saved with), the VMM's own state. Nothing of the state
 * runs before this returns. Errors name the section; the caller stops the VM on one.
 */
export function applyVmState(vmm: Vmm, kind: VmImageKind, state: VmStateCapture): Result<{ pages: number }, string> {
  const auth = vmm.core.auth;
  if (state.core.auth && auth) {
    // The regions the state was saved under (a kexec'd kernel's, perhaps): the core trusts
    // only its own records of where kernel text is.
    vmm.core.attachVerifier({ port: auth.port, vm: auth.vm, audit: auth.audit, kernelRegions: state.core.auth.kernelRegions });
  }
  const path = copyPathFor(kind);
  const { frames, pages } = state.memory;
  for (const [i, f] of frames.entries()) {
    // The image is data: its frame numbers become frames through the validating constructor.
    const frame = tryGfn(f);
    if (isAddrError(frame)) return err(`cannot restore guest memory: ${addrErrorMessage(frame)}`);
    const w = vmm.hostMemory.copyToGuest(path, gfnToGpa(frame), pages.subarray(i * PAGE, (i + 1) * PAGE));
    if (!w.ok) return err(`cannot restore guest memory: ${w.error.message}`);
  }
  const loaded = vmm.core.loadState(state.core);
  if (!loaded.ok) return err(`core section: ${loaded.error.message}`);
  const cpu = state.vmm.cpu;
  if (!sameCpuModel(cpu.model, vmm.cpuModel)) return err(`vmm section: the image was saved on CPU model ${cpu.model.name}, this VM runs ${vmm.cpuModel.name}`);
  const online = vmm.restoreOnlineCpus(cpu.online);
  if (!online.ok) return err(`vmm section: ${online.error}`);
  vmm.markPlatformPinned(state.vmm.platformPinned);
  for (const [slot, img] of state.vmm.staged) vmm.restageKexec(slot, img);
  return ok({ pages: frames.length });
}

/** A checked image put back: {@link decodeVmState}, then {@link applyVmState}. */
export function applyVmImage(vmm: Vmm, image: VmImage): Result<{ pages: number }, string> {
  const state = decodeVmState(image);
  return state.ok ? applyVmState(vmm, image.header.kind, state.value) : state;
}

/**
 * The CPU model and CPUs online an image's VM ran with (its `vmm` section), for a VMM that
 * is about to be built for it (a migration's destination). The image must be checked first.
 */
export function imageCpu(image: VmImage): Result<{ model: CpuModel; online: number }, string> {
  const s = image.sections.get('vmm');
  if (!s) return err('the image has no vmm section');
  const d = decodeSection(VMM_SECTION, s);
  return d.ok ? ok(d.value.cpu) : d;
}

/** Whether two models are the same CPU (every field, the name included). */
function sameCpuModel(a: CpuModel, b: CpuModel): boolean {
  const keys = Object.keys(a) as Array<keyof CpuModel>;
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) =>
    k === 'capabilities' ? a.capabilities.length === b.capabilities.length && a.capabilities.every((w, i) => w === b.capabilities[i]) : a[k] === b[k],
  );
}
