/**
 * heki-sim KVM_HC_HEKI_LOAD_MODULE (16): a0 = guest-physical address of a module descriptor
 * (shared/heki-descriptors.ts): the signed image as given to init_module, and where the guest
 * placed each section. Freeze every frame of every section, snapshot the sections, ask the
 * verifier (signature, then the end state: relocations re-run at these addresses), apply the
 * per-section grants, audit.
 */
import { type GuestMemoryAccess } from '../memory/guest-memory.ts';
import { gfnToGpa, gpaInFrame, type Gfn } from '../../shared/addr.ts';
import { KVM_STATUS } from '../../shared/abi.ts';
import type { PlacedSection } from '../../shared/protocol.ts';
import { EPT_IMMUTABLE, EPT_XS, memAttrToEpt } from '../ept/permissions.ts';
import type { HypercallHandler } from './context.ts';
import { decodeName, readModuleDesc } from './descriptors.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';
import { type Result, err, ok } from '../../shared/result.ts';

const PAGE = 4096n;

export const loadModule: HypercallHandler = (ctx, [a0]) => {
  const { core, vcpu } = ctx;
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  const desc = readModuleDesc(core.memory, a0);
  if (!desc.ok) return -KVM_STATUS.KVM_EINVAL;
  const d = desc.value;
  const name = decodeName(vcpu.readForCore(d.nameGva, d.nameLen));
  if (name === undefined) return -KVM_STATUS.KVM_EINVAL;
  if (auth.modules.has(name)) return -KVM_STATUS.KVM_EINVAL;
  const image = vcpu.readForCore(d.imageGva, d.imageLen);
  if (!image) return -KVM_STATUS.KVM_EINVAL;

  // Resolve every page of every section once; the snapshot and the grants use these frames.
  const layout: Array<{ shndx: number; gva: bigint; size: number; pages: Array<[bigint, Gfn]> }> = [];
  const before = new Map<Gfn, number>();
  for (const s of d.sections) {
    const pages: Array<[bigint, Gfn]> = [];
    const end = s.gva + BigInt(Math.max(s.size, 1));
    for (let va = s.gva & ~(PAGE - 1n); va < end; va += PAGE) {
      const f = vcpu.translateForCore(va);
      if (f === undefined) return -KVM_STATUS.KVM_EINVAL;
      const perms = core.ept.get(f);
      // TRUST: module memory must be the guest's own data pages: never locked (immutable)
      // kernel memory, never a page of another verified module or code image.
      if ((perms & EPT_IMMUTABLE) !== 0 || auth.ownsFrame(f)) return -KVM_STATUS.KVM_EPERM;
      pages.push([va, f]);
      before.set(f, perms);
    }
    layout.push({ shndx: s.shndx, gva: s.gva, size: s.size, pages });
  }
  return authenticatedChange(ctx, auth, {
    gate: 'verdict',
    kind: 'module-load',
    subject: name,
    freeze: before.keys(),
    snapshot: () => {
      const sections: PlacedSection[] = layout.map((s) => ({
        shndx: s.shndx,
        addr: s.gva,
        size: s.size,
        bytes: readFrames(core.memory, s.gva, s.size, s.pages),
      }));
      return {
        kind: 'ask',
        question: { request: { kind: 'module-load', vm: auth.vm, name, image, sections, ...(d.percpu !== undefined ? { percpu: d.percpu } : {}) } },
      };
    },
    apply: (verdict) => {
      if (!verdict.grants) return { kind: 'refused', note: 'verdict carried no grants', reason: 'verdict carried no grants' };
      const grantOf = new Map(verdict.grants.map((g) => [g.shndx, g.permissions]));
      const plan = frameGrants(layout, grantOf);
      if (!plan.ok) return { kind: 'refused', ...plan.error };
      const frameGrant = plan.value;
      const padding = nonZeroPadding(core.memory, layout, frameGrant.keys());
      if (padding) {
        const { frame, offset } = padding;
        return {
          kind: 'refused',
          note: `non-zero padding in frame ${frame} at offset ${offset}`,
          reason: `frame ${frame} holds unverified non-zero bytes outside the module's sections (offset ${offset})`,
        };
      }
      const textPages = new Map<bigint, Gfn>();
      for (const s of layout) {
        const g = grantOf.get(s.shndx) as number;
        for (const [va, f] of s.pages) if (memAttrToEpt(g) & EPT_XS) textPages.set(va, f);
      }
      for (const [f, g] of frameGrant) auth.setPermissions(f, memAttrToEpt(g));
      const sectionFrames = new Map(layout.map((s) => [s.shndx, s.pages.map(([, f]) => f)] as const));
      auth.modules.set(name, { name, frames: before, textPages, sections: sectionFrames });
      auth.addCode(textPages);
      return { kind: 'applied', audit: { frames: frameGrant.size, textPages: textPages.size } };
    },
  });
};

/** Where the module's sections are: each section's guest-virtual pages and their frames. */
type Layout = ReadonlyArray<{ readonly shndx: number; readonly gva: bigint; readonly size: number; readonly pages: ReadonlyArray<[bigint, Gfn]> }>;

/** Each frame's granted MEM_ATTR bits, or why the grants cannot be applied. */
function frameGrants(layout: Layout, grantOf: ReadonlyMap<number, number>): Result<Map<Gfn, number>, { note: string; reason: string }> {
  const frameGrant = new Map<Gfn, number>();
  for (const s of layout) {
    const g = grantOf.get(s.shndx);
    if (g === undefined) return err({ note: `no grant for section ${s.shndx}`, reason: `no grant for section ${s.shndx}` });
    for (const [, f] of s.pages) {
      const prev = frameGrant.get(f);
      // INVARIANT: one frame, one permission; a page shared by text and data is refused.
      if (prev !== undefined && prev !== g) {
        return err({ note: `frame ${f} would get two different grants`, reason: `frame ${f} is shared by sections with different permissions` });
      }
      frameGrant.set(f, g);
    }
  }
  return ok(frameGrant);
}

/**
 * The first non-zero byte of a granted frame outside every section, or undefined.
 * INVARIANT: a granted frame holds only verified bytes: everything outside the sections
 * (alignment gaps, the tail of the last page) must be zero, or it would become executable or
 * read-only without anyone having looked at it.
 */
function nonZeroPadding(mem: GuestMemoryAccess, layout: Layout, granted: Iterable<Gfn>): { frame: Gfn; offset: number } | undefined {
  const covered = new Map<Gfn, Array<[number, number]>>();
  for (const s of layout) {
    let off = Number(s.gva & (PAGE - 1n));
    let left = s.size;
    for (const [, f] of s.pages) {
      const n = Math.min(4096 - off, left);
      if (n > 0) (covered.get(f) ?? covered.set(f, []).get(f)!).push([off, off + n]);
      left -= n;
      off = 0;
    }
  }
  for (const f of granted) {
    const page = mem.read(gfnToGpa(f), 4096);
    const ranges = (covered.get(f) ?? []).sort((a, b) => a[0] - b[0]);
    let at = 0;
    for (const [from, to] of [...ranges, [4096, 4096] as [number, number]]) {
      for (let i = at; i < from; i++) if (page[i] !== 0) return { frame: f, offset: i };
      at = Math.max(at, to);
    }
  }
  return undefined;
}

function readFrames(mem: GuestMemoryAccess, gva: bigint, size: number, pages: ReadonlyArray<[bigint, Gfn]>): Uint8Array {
  const out = new Uint8Array(size);
  let done = 0;
  let off = Number(gva & (PAGE - 1n));
  for (const [, f] of pages) {
    if (done >= size) break;
    const n = Math.min(4096 - off, size - done);
    out.set(mem.read(gpaInFrame(f, off), n), done);
    done += n;
    off = 0;
  }
  return out;
}
