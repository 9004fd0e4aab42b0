/**
 * heki-sim KVM_HC_HEKI_LOAD_CODE (20): a0 = guest-physical address of a code descriptor: a
 * signed image (an eBPF JIT output, a trampoline) the guest wrote at a page-aligned address.
 * Freeze its frames, snapshot the image from them, ask the verifier (signature), make the
 * frames R|X and add them to the trusted code map.
 */
import { KVM_STATUS } from '../../shared/abi.ts';
import { gfnToGpa, gpaInFrame, type Gfn } from '../../shared/addr.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_XS } from '../ept/permissions.ts';
import type { HypercallHandler } from './context.ts';
import { decodeName, readCodeDesc } from './descriptors.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';

const PAGE = 4096n;

export const loadCode: HypercallHandler = (ctx, [a0]) => {
  const { core, vcpu } = ctx;
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  const desc = readCodeDesc(core.memory, a0);
  if (!desc.ok) return -KVM_STATUS.KVM_EINVAL;
  const d = desc.value;
  const name = decodeName(vcpu.readForCore(d.nameGva, d.nameLen));
  if (name === undefined || auth.codeImages.has(name)) return -KVM_STATUS.KVM_EINVAL;
  const pages: Array<[bigint, Gfn]> = [];
  const before = new Map<Gfn, number>();
  for (let off = 0n; off < BigInt(d.imageLen); off += PAGE) {
    const f = vcpu.translateForCore(d.imageGva + off);
    if (f === undefined) return -KVM_STATUS.KVM_EINVAL;
    if (core.ept.get(f) & EPT_IMMUTABLE || auth.ownsFrame(f)) return -KVM_STATUS.KVM_EPERM;
    pages.push([d.imageGva + off, f]);
    before.set(f, core.ept.get(f));
  }
  const subject = `${d.what}:${name}`;
  return authenticatedChange(ctx, auth, {
    gate: 'verdict',
    kind: 'code-load',
    subject,
    freeze: before.keys(),
    snapshot: () => {
      const image = new Uint8Array(d.imageLen);
      pages.forEach(([, f], i) => image.set(core.memory.read(gfnToGpa(f), Math.min(4096, d.imageLen - i * 4096)), i * 4096));
      // The whole last frame becomes executable, so the bytes after the image must be zero:
      // otherwise unverified code would ride along in the tail.
      const tail = d.imageLen % 4096;
      if (tail !== 0 && core.memory.read(gpaInFrame(pages[pages.length - 1]![1], tail), 4096 - tail).some((b) => b !== 0)) {
        return { kind: 'invalid', status: -KVM_STATUS.KVM_EINVAL };
      }
      const keyId = Buffer.from(d.keyId).toString('hex');
      return {
        kind: 'ask',
        question: { request: { kind: 'code-load', vm: auth.vm, what: d.what, name, addr: d.imageGva, image, signature: d.signature, keyId } },
      };
    },
    apply: () => {
      for (const f of before.keys()) auth.setPermissions(f, EPT_R | EPT_XS);
      const textPages = new Map(pages);
      auth.codeImages.set(name, { name, frames: before, textPages });
      auth.addCode(textPages);
      return { kind: 'applied', audit: { pages: pages.length } };
    },
  });
};
