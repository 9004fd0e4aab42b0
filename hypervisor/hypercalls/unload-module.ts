/**
 * heki-sim KVM_HC_HEKI_UNLOAD_MODULE (17): a0 = guest-virtual address of the module's name,
 * a1 = its length. Every frame of the module returns to data-only (R|W, not executable, not
 * immutable) and leaves the trusted code map. Taking permissions away is always safe, so the
 * core applies it even if the verifier is unavailable; the verifier is told so that it
 * forgets the module's symbols and sites, and the verdict is audited.
 */
import { KVM_STATUS } from '../../shared/abi.ts';
import { EPT_R, EPT_W } from '../ept/permissions.ts';
import type { HypercallHandler } from './context.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';
import { namedModule } from './descriptors.ts';
import type { HypercallContext } from './context.ts';

export const unloadModule: HypercallHandler = (ctx, [a0, a1]) => {
  const named = namedModule(ctx, a0, a1);
  return typeof named === 'number' ? named : unloadModuleNamed(ctx, named.name);
};

/**
 * The unload itself, for a module already named: the KVM hypercall reads the name from guest
 * memory; the Hyper-V personality (hypervisor/hyperv/) has it from its module token.
 */
export function unloadModuleNamed(ctx: HypercallContext, name: string): number | Promise<number> {
  const auth = ctx.core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  const rec = auth.modules.get(name);
  if (!rec) return -KVM_STATUS.KVM_EINVAL;
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
}
