/**
 * heki-sim KVM_HC_HEKI_END_BOOT (15): the guest ends boot. The core freezes and snapshots the
 * kernel image's sections (where the manifest says they are in guest-physical memory) and the
 * verifier compares them with the signed manifest. Accepted: boot ends, and from now on
 * PROTECT_MEMORY may only take permissions away; every widening goes through the verifier.
 * Refused: -KVM_EPERM and, by default, the VMM stops the VM.
 */
import { KVM_STATUS } from '../../shared/abi.ts';
import { framesOfRange, isAddrError, tryGpa, type Gfn } from '../../shared/addr.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';
import type { HypercallHandler } from './context.ts';

export const endBoot: HypercallHandler = (ctx) => {
  const auth = ctx.core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  if (auth.bootEnded) return -KVM_STATUS.KVM_EPERM;
  const mem = ctx.core.memory;
  const regions = auth.kernelRegions.flatMap((r) => {
    const at = tryGpa(r.paddr);
    return !isAddrError(at) && mem.contains(at, r.size) ? [{ ...r, at }] : [];
  });
  if (regions.length !== auth.kernelRegions.length) return -KVM_STATUS.KVM_EINVAL;
  const frames: Gfn[] = [];
  for (const r of regions) {
    const { first, end } = framesOfRange(r.at, r.at + BigInt(r.size));
    for (let f = first; f < end; f++) frames.push(f);
  }
  return authenticatedChange(ctx, auth, {
    gate: 'verdict',
    kind: 'kernel-text',
    subject: regions.map((r) => r.name).join(','),
    freeze: frames,
    snapshot: () => ({
      kind: 'ask',
      question: {
        request: { kind: 'kernel-text', vm: auth.vm, sections: regions.map((r) => ({ name: r.name, addr: r.vaddr, bytes: mem.read(r.at, r.size) })) },
      },
    }),
    apply: () => {
      auth.bootEnded = true;
      return { kind: 'applied' };
    },
  });
};
