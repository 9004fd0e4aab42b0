/**
 * Live migration (docs/lifecycle.md): a snapshot of the whole VM, signed by the source VMM,
 * restored into a fresh VM, a new VMM with a new verifier, which then enforces exactly what
 * the source did.
 *
 * The snapshot is a signed VM state image (shared/vm-image.ts) of kind `migration` with the
 * sections every state image has (core, memory, verifier, vmm: hypervisor/vmm/lifecycle/
 * vm-state-image.ts), plus:
 * - `guest`: the guest kernel's bookkeeping (guest/kernel/guest-state.ts, its schema
 *   guest-state-schema.ts), guest data the host carries without interpreting;
 * - `platform`: what the destination needs to stand the VM up: the VM's whole configuration
 *   (the source VMM's {@link VmSettings}: RAM and disk size, vCPUs, protected-memory mode and
 *   whatever VmmConfig holds), the verifier's keyring and boot manifest (and plugin
 *   configuration), the audit log's head at the source, the disk's written sectors
 *   (platform-section.ts).
 *
 * TRUST: the destination believes nothing in a snapshot before it checked the signature
 * against the one source key its operator trusts (`trust`): the keyring in it is what the new
 * verifier will trust. The new verifier then checks the image again against that keyring's
 * `vmm` keys before it takes its own per-VM state from it (`restore-state`), and the new VMM
 * re-applies memory and every protection only after that verdict, before a vCPU runs.
 */
import { createHash } from 'node:crypto';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { checkVmImage, decodeVmImage } from '../../shared/vm-image.ts';
import { decodeSection, encodeSection } from '../../shared/state-section.ts';
import { GUEST_SECTION } from '../../guest/kernel/guest-state-schema.ts';
import { PLATFORM_SECTION, type SnapshotPlatform } from './platform-section.ts';
import { Vmm, type VmSettings } from '../../hypervisor/vmm/vmm.ts';
import { VerifierLink } from '../../hypervisor/verifier-link/verifier-link.ts';
import { manifestLayout } from '../../hypervisor/vmm/lifecycle/boot-kernel.ts';
import { applyVmImage, captureVmImage, imageCpu } from '../../hypervisor/vmm/lifecycle/vm-state-image.ts';
import { auditLifecycle } from '../../hypervisor/vmm/lifecycle/lifecycle-audit.ts';
import { AuditLog, type AuditHead } from '../../hypervisor/audit/audit-log.ts';
import type { KeyringData } from '../../shared/keyring-data.ts';
import type { WorkerInit } from '../../shared/worker-api.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { publicKeyVmImageVerifier } from '../../shared/crypto/vm-image-signature.ts';
import { restoreGuestKernel, saveGuestKernel, type GuestKernelState } from '../../guest/kernel/guest-state.ts';
import type { GuestKernel } from '../../guest/kernel/guest-kernel.ts';
import type { MachineHost, MachineSwap } from './machine-host.ts';
import { notify } from '../../hypervisor/observe/vm-observer.ts';
import { observePort } from '../../hypervisor/observe/observed-port.ts';

export type { SnapshotPlatform } from './platform-section.ts';

/** Takes a migration snapshot of a running machine; the VM must be idle (between steps). */
export async function snapshotVm(vmm: Vmm, kernel: GuestKernel, host: MachineHost, audit: AuditLog): Promise<Result<Uint8Array, string>> {
  const { keyring, manifest, ...verifier } = host.verifierInit;
  if (manifest === undefined) return err('the verifier was started without a manifest');
  const platform: SnapshotPlatform = {
    version: 2,
    memoryBytes: vmm.core.memory.size,
    vm: vmm.settings,
    keyring,
    manifest,
    verifier,
    auditHead: audit.head(),
    disk: vmm.devices.disk.exportSectors(),
  };
  const guest: GuestKernelState = saveGuestKernel(kernel);
  const image = await captureVmImage(vmm, 'migration', [
    { name: 'guest', bytes: encodeSection(GUEST_SECTION, guest) },
    { name: 'platform', bytes: encodeSection(PLATFORM_SECTION, platform) },
  ]);
  if (!image.ok) return image;
  auditLifecycle(vmm, { type: 'migrate-out', result: 'snapshot', bytes: image.value.length, sha256: createHash('sha256').update(image.value).digest('hex') });
  return image;
}

/** Why a snapshot was not restored; `kind` says at which check. */
export interface RestoreError {
  /** The image's own checks (shared/vm-image.ts), `refused` by the new verifier, or `failed` to start or apply. */
  readonly kind: 'malformed' | 'signature' | 'untrusted-key' | 'digest' | 'identity' | 'kind' | 'refused' | 'failed';
  readonly message: string;
}

/** How to restore. */
export interface RestoreOptions {
  /** The source VMM's public key the operator trusts (32 bytes). */
  readonly trust: Uint8Array;
  /** The guest's kernel image (its System.map view): the kernel the VM runs. */
  readonly image: KernelImage;
  /** The kernel the new VMM boots on a reboot (default: `image`). */
  readonly bootImage?: KernelImage;
  /** The host side of the new machine: its files and kernel-vendor key (a fresh, untrusted one by default). */
  readonly host: Pick<MachineHost, 'vmlinuzPath' | 'systemMapPath'> &
    Partial<Pick<MachineHost, 'vendor' | 'linkOptions' | 'policy' | 'vmmKey' | 'observer' | 'physBits' | 'hypervisor'>>;
  /** The audit log to continue (default: a new in-memory one, whose first record names the source's head). */
  readonly audit?: AuditLog;
  /** Overrides the snapshot's fault-injection setting (tests). */
  readonly faultInjection?: boolean;
}

/** A restored VM, ready to run: the parts of a {@link SimulatedMachine}. */
export interface RestoredVm extends MachineSwap {
  readonly audit: AuditLog;
  readonly memoryBytes: bigint;
  /** The snapshot's header facts, for reports. */
  readonly source: { readonly vm: string; readonly vmId: string; readonly keyId: string; readonly created: string; readonly auditHead: AuditHead };
}

const fail = (kind: RestoreError['kind'], message: string): Result<never, RestoreError> => err({ kind, message });

/** Restores a snapshot into a fresh VM; every refusal names the check that failed. */
export async function restoreVm(bytes: Uint8Array, opts: RestoreOptions): Promise<Result<RestoredVm, RestoreError>> {
  const decoded = decodeVmImage(bytes);
  if (!decoded.ok) return fail(decoded.error.kind, decoded.error.message);
  const image = decoded.value;
  const h = image.header;
  const checked = checkVmImage(image, publicKeyVmImageVerifier(opts.trust), { vm: h.vm, kind: 'migration' });
  if (!checked.ok) return fail(checked.error.kind, checked.error.message);
  const platformBytes = image.sections.get('platform');
  const guestBytes = image.sections.get('guest');
  if (!platformBytes || !guestBytes) return fail('malformed', 'the snapshot lacks its platform or guest section');
  const p = decodeSection(PLATFORM_SECTION, platformBytes);
  if (!p.ok) return fail('malformed', p.error);
  const g = decodeSection(GUEST_SECTION, guestBytes);
  if (!g.ok) return fail('malformed', g.error);
  const platform = p.value;
  const settings = vmSettingsOf(platform);
  if (typeof settings === 'string') return fail('malformed', `the platform section's VM configuration: ${settings}`);
  const layout = manifestLayout(platform.manifest);
  if (!layout.ok) return fail('malformed', `the boot manifest: ${layout.error}`);
  // The VM's CPU model is VM configuration: the destination runs the source's, online CPUs included.
  const cpu = imageCpu(image);
  if (!cpu.ok) return fail('malformed', cpu.error);

  // The destination VMM keeps the VM's identity and signs the VM's next images with its own
  // key (its operator's, or a fresh one).
  const identity = { vmId: h.vmId, key: opts.host.vmmKey ?? generateEd25519KeyPair() };
  const ownId = ed25519KeyIdHex(identity.key.publicKey);
  const keyring: KeyringData = platform.keyring.ed25519.some((k) => k.keyId === ownId)
    ? platform.keyring
    : {
        ...platform.keyring,
        ed25519: [
          ...platform.keyring.ed25519,
          { keyId: ownId, role: 'vmm', publicKey: identity.key.publicKey, source: `the destination VMM's key for ${h.vm}` },
        ],
      };
  const init: WorkerInit = {
    ...platform.verifier,
    keyring,
    manifest: platform.manifest,
    vms: { ...platform.verifier.vms, [h.vm]: { cpuModel: cpu.value.model, onlineCpus: cpu.value.online } },
    ...(opts.faultInjection !== undefined ? { faultInjection: opts.faultInjection } : {}),
  };
  const linkOptions = opts.host.linkOptions ?? {};
  let link: VerifierLink;
  try {
    link = await VerifierLink.start({ init, ...linkOptions });
  } catch (e) {
    return fail('failed', `the destination verifier did not start: ${e instanceof Error ? e.message : String(e)}`);
  }
  const observer = opts.host.observer;
  if (observer?.verifierStarted) {
    const time = performance.now();
    notify(() => observer.verifierStarted!({ vm: h.vm, init, time }));
  }
  const audit = opts.audit ?? AuditLog.inMemory();
  const vmm = new Vmm({
    ...settings,
    name: h.vm,
    identity,
    cpu: cpu.value.model,
    ...(opts.host.policy ? { policy: opts.host.policy } : {}),
    ...(opts.host.physBits !== undefined ? { physBits: opts.host.physBits } : {}),
    ...(opts.host.hypervisor !== undefined ? { hypervisor: opts.host.hypervisor } : {}),
    ...(observer ? { observer } : {}),
  });
  const bootImage = opts.bootImage ?? opts.image;
  const port = observer ? observePort(link, observer, { before: () => vmm.core.events?.flushEpt() }) : link;
  vmm.core.attachVerifier({ port, vm: h.vm, audit, kernelRegions: layout.value.regions });
  vmm.setBootKernel({ elf: bootImage.elf, manifest: platform.manifest, regions: layout.value.regions, name: layout.value.name });
  const give = async (kind: RestoreError['kind'], message: string): Promise<Result<never, RestoreError>> => {
    auditLifecycle(vmm, { type: 'migrate-in', result: kind, detail: message });
    await link.dispose();
    return fail(kind, message);
  };
  auditLifecycle(vmm, {
    type: 'migrate-in',
    result: 'started',
    vmId: h.vmId,
    sourceKeyId: h.keyId,
    sourceAuditSeq: platform.auditHead.seq,
    sourceAuditHash: platform.auditHead.hash,
  });
  const auth = vmm.core.auth!;
  const verdict = await auth.verify({ kind: 'restore-state', vm: h.vm, image: bytes });
  auth.record('restore-state', `migration snapshot (${bytes.length} bytes)`, verdict, { applied: verdict.ok });
  if (!verdict.ok) return give('refused', `the destination verifier refused the snapshot: ${verdict.reason}`);
  const applied = applyVmImage(vmm, image);
  if (!applied.ok) return give('failed', applied.error);
  vmm.devices.disk.importSectors(platform.disk);
  const kernel = restoreGuestKernel(vmm.bootCpu, opts.image, g.value);
  if (!kernel.ok) return give('failed', kernel.error);
  auditLifecycle(vmm, { type: 'migrate-in', result: 'restored', pages: applied.value.pages });
  return ok({
    vmm,
    link,
    audit,
    image: opts.image,
    kernel: kernel.value,
    memoryBytes: platform.memoryBytes,
    host: {
      verifierInit: init,
      linkOptions,
      vendor: opts.host.vendor ?? generateEd25519KeyPair(),
      vmlinuzPath: opts.host.vmlinuzPath,
      systemMapPath: opts.host.systemMapPath,
      ...(opts.host.policy ? { policy: opts.host.policy } : {}),
      ...(opts.host.vmmKey ? { vmmKey: opts.host.vmmKey } : {}),
      ...(opts.host.physBits !== undefined ? { physBits: opts.host.physBits } : {}),
      ...(opts.host.hypervisor !== undefined ? { hypervisor: opts.host.hypervisor } : {}),
      ...(observer ? { observer } : {}),
    },
    source: { vm: h.vm, vmId: h.vmId, keyId: h.keyId, created: h.created, auditHead: platform.auditHead },
  });
}

/**
 * The configuration the destination VM starts with: the source's, checked against the rest
 * of the platform section (its RAM size, a disk that holds every written sector).
 */
function vmSettingsOf(platform: SnapshotPlatform): VmSettings | string {
  const needed = Math.max(0, ...platform.disk.map(([s]) => s + 1));
  const vm = platform.vm;
  if (vm.memoryBytes !== platform.memoryBytes) return `RAM size ${String(vm.memoryBytes)} differs from the memory's ${platform.memoryBytes}`;
  const sectors = vm.disk?.sectors ?? 2048;
  if (!Number.isSafeInteger(sectors) || sectors < needed) return `a disk of ${String(sectors)} sectors cannot hold the written sector ${needed - 1}`;
  return vm;
}
