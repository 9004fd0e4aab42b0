/**
 * heki-sim KVM_HC_HEKI_END_BOOT (15): the guest ends boot. The core freezes and snapshots the
 * kernel image's sections (where the manifest says they are in guest-physical memory) and the
 * verifier compares them with the signed manifest. Accepted: boot ends, and from now on
 * PROTECT_MEMORY may only take permissions away; every widening goes through the verifier.
 * Refused: -KVM_EPERM and, by default, the VMM stops the VM.
 */
import { KVM_STATUS } from '../../shared/abi.ts';
import type { HypercallHandler } from './context.ts';
import { verificationDenied } from './verification-outcome.ts';

export const endBoot: HypercallHandler = async (ctx) => {
  const auth = ctx.core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  if (auth.bootEnded) return -KVM_STATUS.KVM_EPERM;
  const mem = ctx.core.memory;
  const regions = auth.kernelRegions.filter((r) => mem.contains(r.paddr, r.size));
  if (regions.length !== auth.kernelRegions.length) return -KVM_STATUS.KVM_EINVAL;
  const frames: number[] = [];
  for (const r of regions) for (let f = Number(r.paddr >> 12n); f <= Number((r.paddr + BigInt(r.size) - 1n) >> 12n); f++) frames.push(f);
  const frozen = auth.freeze(frames);
  try {
    const sections = regions.map((r) => ({ name: r.name, addr: r.vaddr, bytes: mem.read(r.paddr, r.size) }));
    const subject = regions.map((r) => r.name).join(',');
    const verdict = await auth.verify({ kind: 'kernel-text', vm: auth.vm, sections });
    if (verdict.ok) auth.bootEnded = true;
    auth.record('kernel-text', subject, verdict, { applied: verdict.ok });
    return verdict.ok ? 0 : verificationDenied(ctx, 'kernel-text', subject, verdict);
  } finally {
    auth.thaw(frozen);
  }
};
