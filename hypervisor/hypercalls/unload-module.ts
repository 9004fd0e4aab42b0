/**
 * heki-sim KVM_HC_HEKI_UNLOAD_MODULE (17): a0 = guest-virtual address of the module's name,
 * a1 = its length. Every frame of the module returns to data-only (R|W, not executable, not
 * immutable) and leaves the trusted code map. Taking permissions away is always safe, so the
 * core applies it even if the verifier is unavailable; the verifier is told so that it
 * forgets the module's symbols and sites, and the verdict is audited.
 */
import { EPT_R, EPT_W } from '../ept/permissions.ts';
import type { HypercallHandler } from './context.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';
import { namedModule } from './descriptors.ts';

export const unloadModule: HypercallHandler = (ctx, [a0, a1]) => {
  const named = namedModule(ctx, a0, a1);
  if (typeof named === 'number') return named;
  const { auth, name, rec } = named;
  return authenticatedChange(ctx, auth, {
    gate: 'none',
    kind: 'module-unload',
    subject: name,
    revoke: () => {
      auth.modules.delete(name);
      auth.removeCode(rec.textPages);
      for (const f of rec.frames.keys()) auth.setPermissions(f, EPT_R | EPT_W);
      return { frames: rec.frames.size };
    },
    request: { kind: 'module-unload', vm: auth.vm, name },
  });
};
