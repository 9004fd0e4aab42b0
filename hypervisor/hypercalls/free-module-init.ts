/**
 * heki-sim KVM_HC_HEKI_FREE_MODULE_INIT (23): a0 = guest-virtual address of a loaded module's
 * name, a1 = its length. The module's init function returned (6.1's do_init_module()): its
 * init layout is about to be freed (module_memfree() of mod->init_layout.base) and its
 * ro_after_init data sealed (module_enable_ro(mod, true)).
 *
 * Freeze every frame of the module, ask the verifier (`module-init-free`), apply its grants,
 * audit. The verdict grants, per section index, either R+W (the section is released: its
 * frames become data-only, leave the module's record and the trusted code map, so the guest
 * may hand them to the next module load) or R+IMMUTABLE (sealed). Nothing is applied on a
 * denial: init text stays executable and locked until the module unloads (fail closed).
 */
import { KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import type { Gfn } from '../../shared/addr.ts';
import type { Verdict } from '../../shared/protocol.ts';
import { authenticatedChange, type ChangeApplied } from '../core/auth/authenticated-change.ts';
import type { Authenticator, ModuleRecord } from '../core/auth/authenticator.ts';
import { EPT_R, EPT_W, memAttrToEpt } from '../ept/permissions.ts';
import type { HypercallContext, HypercallHandler } from './context.ts';
import { namedModule } from './descriptors.ts';

const RELEASE = MEM_ATTR.READ | MEM_ATTR.WRITE;
const SEAL = MEM_ATTR.READ | MEM_ATTR.IMMUTABLE;

export const freeModuleInit: HypercallHandler = (ctx, [a0, a1]) => {
  const named = namedModule(ctx, a0, a1);
  if (typeof named === 'number') return named;
  return freeModuleInitNamed(ctx, named.name);
};

/**
 * The end of init itself, for a module already named: the KVM hypercall reads the name from
 * guest memory; the Hyper-V personality (hypervisor/hyperv/) has it from its module token.
 */
export function freeModuleInitNamed(ctx: HypercallContext, name: string): number | Promise<number> {
  const auth = ctx.core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  const rec = auth.modules.get(name);
  if (!rec) return -KVM_STATUS.KVM_EINVAL;
  // A record without section frames (restored from an older image) cannot say which go.
  if (!rec.sections) return -KVM_STATUS.KVM_EINVAL;
  const sections = rec.sections;
  return authenticatedChange(ctx, auth, {
    gate: 'verdict',
    kind: 'module-init-free',
    subject: name,
    freeze: rec.frames.keys(),
    snapshot: () => ({ kind: 'ask', question: { request: { kind: 'module-init-free', vm: auth.vm, name } } }),
    apply: (verdict) => applyInitFree(auth, name, rec, sections, verdict),
  });
}

/** Releases and seals the sections `verdict` grants, or refuses (changing nothing) a grant the core's own record does not back. */
function applyInitFree(auth: Authenticator, name: string, rec: ModuleRecord, sections: ReadonlyMap<number, readonly Gfn[]>, verdict: Verdict): ChangeApplied {
  const refused = (why: string): ChangeApplied => ({ kind: 'refused', note: why, reason: why });
  if (!verdict.grants) return refused('verdict carried no grants');
  const released = new Set<Gfn>();
  const sealed = new Set<Gfn>();
  for (const g of verdict.grants) {
    const frames = sections.get(g.shndx);
    // TRUST: the verdict may only release or seal sections the core itself resolved at the load.
    if (!frames) return refused(`grant for section ${g.shndx}, which module ${name} does not have`);
    if (g.permissions !== RELEASE && g.permissions !== SEAL)
      return refused(`grant ${g.permissions} for section ${g.shndx} is neither a release (R+W) nor a seal (R+IMMUTABLE)`);
    for (const f of frames) (g.permissions === RELEASE ? released : sealed).add(f);
  }
  // INVARIANT: a released frame holds nothing the module keeps: no kept section has it.
  const releasedSections = new Set(verdict.grants.filter((g) => g.permissions === RELEASE).map((g) => g.shndx));
  for (const [shndx, frames] of sections) {
    if (releasedSections.has(shndx)) continue;
    const shared = frames.find((f) => released.has(f));
    if (shared !== undefined) return refused(`frame ${shared} of released init memory is also a frame of kept section ${shndx}`);
  }
  for (const f of sealed) auth.setPermissions(f, memAttrToEpt(SEAL));
  for (const f of released) auth.setPermissions(f, EPT_R | EPT_W);
  const gone = new Map([...rec.textPages].filter(([, f]) => released.has(f)));
  auth.removeCode(gone);
  auth.modules.set(name, {
    name,
    frames: new Map([...rec.frames].filter(([f]) => !released.has(f))),
    textPages: new Map([...rec.textPages].filter(([va]) => !gone.has(va))),
    sections: new Map([...sections].filter(([shndx]) => !releasedSections.has(shndx))),
  });
  return { kind: 'applied', audit: { released: released.size, sealed: sealed.size, textPages: gone.size } };
}
