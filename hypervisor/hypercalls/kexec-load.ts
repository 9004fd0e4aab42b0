/**
 * heki-sim KVM_HC_HEKI_KEXEC_LOAD (21), after kexec_file_load(2): a0 = guest-physical address
 * of a kexec descriptor (shared/heki-descriptors.ts: the bzImage and its signed manifest in
 * guest memory), a1 = flags (KEXEC_FLAG: ON_CRASH fills the crash kernel's slot, UNLOAD
 * empties the slot and ignores a0).
 *
 * The core copies the image and the manifest once, asks the verifier (`kexec-image`: the
 * manifest signed by a kernel-vendor key, the image's SHA-256 the one it names), hands the
 * accepted copies to the VMM in a `kexec-load` exit (the apply step: the VMM owns the
 * lifecycle and stages them), and audits the verdict with what the VMM did. Nothing is reset here: the running kernel keeps every pin and
 * lock until the VMM resets the VM into the staged kernel (KVM_HC_HEKI_KEXEC, or a panic for
 * the crash kernel).
 *
 * TRUST: what the verifier checked is the core's own copy, and that copy (never guest memory
 * read again) is what the VMM stages and later boots, so the guest cannot change the image
 * after the check; its pages need no freezing.
 */
import { createHash } from 'node:crypto';
import { KEXEC_FLAG, KEXEC_FLAGS_MASK, KVM_STATUS } from '../../shared/abi.ts';
import type { KexecSlot } from '../exits/exit.ts';
import type { HypercallHandler } from './context.ts';
import { readKexecDesc } from './descriptors.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';

/** KVM_HC_HEKI_KEXEC_LOAD: see the file comment. */
export const kexecLoad: HypercallHandler = (ctx, [a0, a1]) => {
  const { core, vcpu } = ctx;
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  if ((a1 & ~BigInt(KEXEC_FLAGS_MASK)) !== 0n) return -KVM_STATUS.KVM_EINVAL;
  const slot: KexecSlot = (a1 & BigInt(KEXEC_FLAG.ON_CRASH)) !== 0n ? 'crash' : 'kexec';
  if ((a1 & BigInt(KEXEC_FLAG.UNLOAD)) !== 0n) {
    const r = core.exit({ reason: 'kexec-load', vcpu: vcpu.id, slot, image: undefined });
    return r.action === 'resume' ? 0 : -KVM_STATUS.KVM_EPERM;
  }
  const desc = readKexecDesc(core.memory, a0);
  if (!desc.ok) return -KVM_STATUS.KVM_EINVAL;
  const d = desc.value;
  const image = vcpu.readForCore(d.imageGva, d.imageLen);
  const manifestBytes = vcpu.readForCore(d.manifestGva, d.manifestLen);
  if (!image || !manifestBytes) return -KVM_STATUS.KVM_EINVAL;
  let manifest: string;
  try {
    manifest = new TextDecoder('utf-8', { fatal: true }).decode(manifestBytes);
  } catch {
    return -KVM_STATUS.KVM_EINVAL;
  }
  return authenticatedChange(ctx, auth, {
    gate: 'verdict',
    kind: 'kexec-image',
    subject: `${slot} image (${image.length} bytes)`,
    audit: { slot },
    // TRUST: the file comment: the core's own copies are what is checked and staged.
    freeze: [],
    snapshot: () => ({ kind: 'ask', question: { request: { kind: 'kexec-image', vm: auth.vm, slot, image, manifest } } }),
    apply: (verdict) => {
      const sha256 = createHash('sha256').update(image).digest('hex');
      const r = core.exit({ reason: 'kexec-load', vcpu: vcpu.id, slot, image: { image, manifest, sha256, request: verdict.id } });
      if (r.action !== 'resume') return { kind: 'failed', note: 'the VMM refused to stage it', status: -KVM_STATUS.KVM_EPERM };
      return { kind: 'applied', audit: { sha256 } };
    },
  });
};
