/**
 * Hibernation (ACPI S4) and resume under Heki.
 *
 * In Linux the kernel writes its own image to swap and the next boot's kernel copies it back.
 * Under Heki neither can be trusted with that: the image would come back through a kernel
 * that must write locked text, and nothing would re-establish the pins, the EPT locks or what
 * the verifier knows. So the guest only asks (S4 through the ACPI PM1a control register) and
 * the VMM hibernates the VM: it saves the whole VM into a state image signed with its per-VM
 * key (vm-state-image.ts) and writes it to the VM's emulated disk, at the resume area
 * ({@link RESUME_SECTOR}, where the swap partition would be), behind a one-sector header.
 *
 * The disk is the guest's: the guest, or anyone with the disk file, can change the image
 * while the VM is off. So on resume the image goes to the verifier first (`restore-state`): it
 * checks the signature against the `vmm` keys of its keyring, that the image is this VM's,
 * and every section's digest, and only then takes its own per-VM state back. The VMM resets
 * the VM, and re-applies memory and every protection (pins, filters, EPT attributes with the
 * immutable ranges, the authenticator's records) only after that verdict, before a vCPU runs.
 * A refused image leaves the VM off. The resume header is erased after a resume, as swsusp
 * erases its swap signature, so one image resumes once.
 */
import { type Result, err, ok } from '../../../shared/result.ts';
import { decodeVmImage } from '../../../shared/vm-image.ts';
import { VIRTIO_BLK_SECTOR_SIZE } from '../../../shared/virtio-blk.ts';
import type { Vmm } from '../vmm.ts';
import { auditLifecycle } from './lifecycle-audit.ts';
import { applyVmImage, captureVmImage } from './vm-state-image.ts';

/** First sector of the resume area. */
export const RESUME_SECTOR = 0;
/** Magic of the resume header sector: "HEKIHIB1". */
export const RESUME_MAGIC = new TextEncoder().encode('HEKIHIB1');

const SECTOR = VIRTIO_BLK_SECTOR_SIZE;

/** Saves the VM to the disk and leaves it off. `guestState` travels in the image opaquely. */
export async function hibernate(vmm: Vmm, guestState: Uint8Array, sector = RESUME_SECTOR): Promise<Result<{ sector: number; bytes: number }, string>> {
  const image = await captureVmImage(vmm, 'hibernate', [{ name: 'guest', bytes: guestState }]);
  if (!image.ok) return image;
  const disk = vmm.devices.disk;
  const sectors = 1 + Math.ceil(image.value.length / SECTOR);
  if (sector + sectors > disk.sectors) return err(`the image needs ${sectors} sectors from ${sector}; the disk has ${disk.sectors}`);
  const header = new Uint8Array(SECTOR);
  header.set(RESUME_MAGIC, 0);
  new DataView(header.buffer).setBigUint64(8, BigInt(image.value.length), true);
  const body = new Uint8Array((sectors - 1) * SECTOR);
  body.set(image.value, 0);
  disk.writeSectors(sector + 1, body);
  disk.writeSectors(sector, header);
  vmm.core.stop(`hibernated (ACPI S4): a signed image of ${image.value.length} bytes is at sector ${sector} of the disk`);
  auditLifecycle(vmm, { type: 'hibernate', result: 'hibernated', sector, bytes: image.value.length });
  return ok({ sector, bytes: image.value.length });
}

/** Why a resume did not happen. */
export interface ResumeError {
  /** `no-image`: nothing to resume (the VM is untouched); `refused`: the verifier refused the image; `failed`: it could not be applied. */
  readonly kind: 'no-image' | 'refused' | 'failed';
  readonly message: string;
}

/**
 * Resumes the VM from the image on its disk; resolves to the image's `guest` section (the
 * guest kernel's bookkeeping) once every protection is back. On a refusal the VM stays off.
 */
export async function resume(vmm: Vmm, sector = RESUME_SECTOR): Promise<Result<{ guest: Uint8Array; pages: number; detail: string }, ResumeError>> {
  const disk = vmm.devices.disk;
  const header = disk.readSectors(sector, 1);
  if (!RESUME_MAGIC.every((b, i) => header[i] === b))
    return err({ kind: 'no-image', message: `no hibernation image at sector ${sector} of the disk (no resume signature)` });
  const length = Number(new DataView(header.buffer).getBigUint64(8, true));
  const sectors = Math.ceil(length / SECTOR);
  if (length < 1 || sector + 1 + sectors > disk.sectors)
    return err({ kind: 'no-image', message: `the resume header claims ${length} bytes, more than the disk holds` });
  const image = disk.readSectors(sector + 1, sectors).subarray(0, length);

  vmm.reset({ clearMemory: true, why: `resume from the hibernation image at sector ${sector}` });
  const auth = vmm.core.auth;
  const off = (kind: ResumeError['kind'], message: string): Result<never, ResumeError> => {
    vmm.core.stop(`resume refused: ${message}`);
    auditLifecycle(vmm, { type: 'resume', result: kind, detail: message });
    return err({ kind, message });
  };
  if (!auth) return off('failed', 'no verifier is attached to check the image');
  if (!auth.port.resetVm) return off('failed', 'the verifier link cannot forget the VM state (no resetVm)');
  await auth.port.resetVm(auth.vm);
  // TRUST: the verifier decides whether this image is believed at all: it checks what it
  // will take back itself. The VMM applies nothing before an allowed verdict.
  const verdict = await auth.verify({ kind: 'restore-state', vm: auth.vm, image });
  auth.record('restore-state', `hibernation image (${length} bytes)`, verdict, { applied: verdict.ok });
  if (!verdict.ok) return off('refused', verdict.reason);
  const decoded = decodeVmImage(image);
  if (!decoded.ok) return off('failed', decoded.error.message);
  const applied = applyVmImage(vmm, decoded.value);
  if (!applied.ok) return off('failed', applied.error);
  disk.writeSectors(sector, new Uint8Array(SECTOR));
  const detail = `resumed from the image at sector ${sector} (${applied.value.pages} pages; signed by vmm key ${decoded.value.header.keyId} on ${decoded.value.header.created}); every protection re-applied before the guest ran`;
  auditLifecycle(vmm, { type: 'resume', result: 'resumed', pages: applied.value.pages, keyId: decoded.value.header.keyId });
  return ok({ guest: decoded.value.sections.get('guest') ?? new Uint8Array(0), pages: applied.value.pages, detail });
}
