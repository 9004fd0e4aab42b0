/**
 * heki-sim KVM_HC_HEKI_SET_MEMORY (19): the guest's set_memory_*(addr, numpages) after boot.
 * a0 = page-aligned kernel virtual address, a1 = number of pages (1..65536), a2 = the
 * MEM_ATTR bits every page should have. W+X is refused by the core itself (-KVM_EINVAL);
 * everything else is decided by the verifier on frozen pages and their content hashes, and an
 * IMMUTABLE page is never changed whatever the verdict says.
 */
import { createHash } from 'node:crypto';
import { gfnToGpa, type Gfn } from '../../shared/addr.ts';
import { KVM_STATUS, MEM_ATTR, MEM_ATTR_MASK } from '../../shared/abi.ts';
import { EPT_FROZEN, EPT_IMMUTABLE, EPT_XS, eptToMemAttr, memAttrToEpt } from '../ept/permissions.ts';
import type { HypercallHandler } from './context.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';

const PAGE = 4096n;

export const setMemory: HypercallHandler = (ctx, [a0, a1, a2]) => {
  const { core, vcpu } = ctx;
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  if (a0 % PAGE !== 0n || a1 === 0n || a1 > 65536n || (a2 & ~BigInt(MEM_ATTR_MASK)) !== 0n) return -KVM_STATUS.KVM_EINVAL;
  const requested = Number(a2);
  if (requested & MEM_ATTR.WRITE && requested & (MEM_ATTR.EXEC | MEM_ATTR.EXEC_USER)) return -KVM_STATUS.KVM_EINVAL;
  const pages: Array<[bigint, Gfn]> = [];
  for (let i = 0n; i < a1; i++) {
    const f = vcpu.translateForCore(a0 + i * PAGE);
    if (f === undefined) return -KVM_STATUS.KVM_EINVAL;
    pages.push([a0 + i * PAGE, f]);
  }
  const frames = pages.map(([, f]) => f);
  const wanted = memAttrToEpt(requested);
  return authenticatedChange(ctx, auth, {
    gate: 'verdict',
    kind: 'set-memory',
    subject: `0x${a0.toString(16)}+${a1} pages -> ${requested}`,
    freeze: frames,
    snapshot: () => {
      const current = frames.map((f) => eptToMemAttr(core.ept.get(f)));
      const pageHashes = frames.map((f) =>
        createHash('sha256')
          .update(core.memory.read(gfnToGpa(f), 4096))
          .digest('hex'),
      );
      return { kind: 'ask', question: { request: { kind: 'set-memory', vm: auth.vm, ranges: [{ addr: a0, frames, current, requested, pageHashes }] } } };
    },
    apply: () => {
      // TRUST: an IMMUTABLE page never changes, whatever the verdict says.
      if (frames.some((f) => (core.ept.get(f) & EPT_IMMUTABLE) !== 0 && (core.ept.get(f) & ~EPT_FROZEN) !== wanted)) {
        return { kind: 'refused', note: 'an IMMUTABLE page cannot change', reason: 'an IMMUTABLE page cannot change' };
      }
      for (const f of frames) auth.setPermissions(f, wanted);
      const code = new Map(pages);
      if (wanted & EPT_XS) auth.addCode(code);
      else auth.removeCode(code);
      return { kind: 'applied', audit: { pages: frames.length } };
    },
  });
};
