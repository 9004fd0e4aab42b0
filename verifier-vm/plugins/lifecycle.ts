/**
 * lifecycle: decides the requests of a VM's lifecycle (docs/lifecycle.md).
 *
 * - `kexec-image`: the guest wants to kexec into a kernel (KVM_HC_HEKI_KEXEC_LOAD). Allowed
 *   when the manifest is signed by a `kernel-vendor` key of the keyring that is not revoked
 *   (the same check as the verifier's own manifest at start), and the image's SHA-256 equals
 *   the manifest's `vmlinuzSha256`: the manifest vouches for exactly these bytes. The verdict
 *   changes no state: the VMM stages the copies the verifier saw.
 * - `kernel-manifest`: the VMM reset the VM into a kexec or crash kernel; the manifest is
 *   checked again and, on an allowed verdict, `commit` makes it the VM's manifest (every later
 *   request of the VM, the boot-text check first, is decided against it).
 * - `restore-state`: the VMM resumes or receives the VM from a signed state image
 *   (shared/vm-image.ts). Allowed when a `vmm` key of the keyring that is not revoked signed
 *   it, it is this VM's image, every section's digest matches the signed header, the
 *   `verifier` section is a well-formed state of its declared schema (../vm-state.ts), and the manifest it names, if
 *   any, passes the manifest check. `commit` then replaces the VM's state with it.
 */
import { createHash } from 'node:crypto';
import type { RequestOf } from '../../shared/protocol.ts';
import { checkVmImage, decodeVmImage } from '../../shared/vm-image.ts';
import { parseBzImageHeader } from '../../shared/kernel-image/bzimage.ts';
import { loadManifest, type KernelManifest } from '../manifest.ts';
import type { PluginContext, PluginResult, VerifierPlugin, VmState } from '../plugin-api.ts';
import { keyringVmImageVerifier } from '../signature/vm-image.ts';
import { applyExportedVmState, checkVerifierSection, type ExportedVmState } from '../vm-state.ts';

/** Plugin name. */
export const LIFECYCLE_PLUGIN = 'lifecycle';
/** The fact a restore-state decision leaves for its commit. */
const RESTORE_FACT = 'lifecycle.restore';

type Restore = { state: ExportedVmState; kernel: VmState['kernel'] };

const deny = (reason: string): PluginResult => ({ decision: 'deny', reason });

/** Decides a kexec-image request. Exported for tests. */
export function checkKexecImage(request: RequestOf<'kexec-image'>, ctx: PluginContext): PluginResult {
  const what = `${request.slot} kernel`;
  const m = loadManifest(request.manifest, ctx.keyring);
  if (!m.ok) return deny(`${what}: ${m.error}`);
  const sha = createHash('sha256').update(request.image).digest('hex');
  if (sha !== m.value.body.vmlinuzSha256) {
    return deny(
      `${what}: image SHA-256 ${sha} differs from the manifest's vmlinuzSha256 ${m.value.body.vmlinuzSha256} (the image was modified, or the manifest is another kernel's)`,
    );
  }
  const bz = parseBzImageHeader(request.image);
  if (!bz.ok) return deny(`${what}: the image is not a kernel: ${bz.error.message}`);
  return { decision: 'allow', reason: `${what} ${m.value.body.kernel}: manifest signed by kernel-vendor key ${m.value.keyId}, image SHA-256 matches` };
}

function checkKernelManifest(request: RequestOf<'kernel-manifest'>, ctx: PluginContext): { result: PluginResult; manifest?: KernelManifest } {
  const m = loadManifest(request.manifest, ctx.keyring);
  if (!m.ok) return { result: deny(`kernel manifest: ${m.error}`) };
  return { result: { decision: 'allow', reason: `kernel ${m.value.body.kernel}, manifest signed by kernel-vendor key ${m.value.keyId}` }, manifest: m.value };
}

/** Decides a restore-state request; on success the decoded state is left in `ctx.facts`. Exported for tests. */
export function checkRestoreState(request: RequestOf<'restore-state'>, ctx: PluginContext): PluginResult {
  const decoded = decodeVmImage(request.image);
  if (!decoded.ok) return deny(`state image: ${decoded.error.message}`);
  const checked = checkVmImage(decoded.value, keyringVmImageVerifier(ctx.keyring), { vm: request.vm });
  if (!checked.ok) return deny(`state image: ${checked.error.message}`);
  const section = checked.value.sections.get('verifier');
  if (!section) return deny('state image: it has no verifier section');
  const v = checkVerifierSection(section, ctx.keyring);
  if (!v.ok) return deny(`state image: ${v.error}`);
  ctx.facts.set(RESTORE_FACT, { state: v.state, kernel: v.kernel } satisfies Restore);
  const h = checked.value.header;
  return {
    decision: 'allow',
    reason: `${h.kind} image of VM ${h.vm} (${h.vmId}) signed by vmm key ${h.keyId} on ${h.created}: ${v.state.modules.size} module(s), boot ${v.state.bootVerified ? 'verified' : 'not verified'}`,
  };
}

/** The lifecycle plugin. */
export const lifecyclePlugin: VerifierPlugin<'kexec-image' | 'kernel-manifest' | 'restore-state'> = {
  name: LIFECYCLE_PLUGIN,
  description:
    "allows kexec images whose SHA-256 a kernel-vendor-signed manifest names, installs a kexec'd kernel's manifest, and restores a VM's state from an image a vmm key signed for it",
  kinds: ['kexec-image', 'kernel-manifest', 'restore-state'],
  decide(request, ctx) {
    if (request.kind === 'kexec-image') return checkKexecImage(request, ctx);
    if (request.kind === 'kernel-manifest') return checkKernelManifest(request, ctx).result;
    return checkRestoreState(request, ctx);
  },
  commit(request, ok, ctx) {
    if (!ok) return;
    if (request.kind === 'kernel-manifest') {
      const c = checkKernelManifest(request, ctx);
      if (c.manifest) ctx.vm.kernel = { manifest: c.manifest, text: request.manifest };
      return;
    }
    if (request.kind === 'restore-state') {
      const r = ctx.facts.get(RESTORE_FACT) as Restore | undefined;
      // INVARIANT: ok means decide allowed, which left the checked state; nothing otherwise.
      if (r) applyExportedVmState(ctx.vm, r.state, r.kernel);
    }
  },
};
