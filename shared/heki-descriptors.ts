/**
 * Layouts of the descriptors the guest passes to heki-sim's authenticated hypercalls
 * (docs/hypercalls.md, sections 3-8). All fields are little-endian u64 unless noted; every
 * descriptor starts with an 8-byte ASCII magic. The guest builds them with the encoders
 * here; the core reads them with its own bounded readers (hypervisor/hypercalls/descriptors.ts).
 */
import { PAGE_SIZE } from './addr.ts';

/** Magic of a module descriptor: "HEKIMOD1". */
export const MODULE_DESC_MAGIC = 0x3144_4f4d_494b_4548n;
/** Magic of a text-patch batch: "HEKIPAT1". */
export const PATCH_BATCH_MAGIC = 0x3154_4150_494b_4548n;
/** Magic of a code descriptor: "HEKICOD1". */
export const CODE_DESC_MAGIC = 0x3144_4f43_494b_4548n;

/** Magic of a kexec descriptor: "HEKIKEX1". */
export const KEXEC_DESC_MAGIC = 0x3158_454b_494b_4548n;
/** Kexec descriptor bytes: magic, image gva/len, manifest gva/len. */
export const KEXEC_DESC_SIZE = 40;
/** Largest kexec image the core copies (64 MiB; Debian's vmlinuz is under 8 MiB). */
export const KEXEC_IMAGE_MAX = 64 << 20;
/** Largest signed manifest the core copies (16 MiB; the Debian 6.1 one is under 3 MiB). */
export const KEXEC_MANIFEST_MAX = 16 << 20;

/** Module descriptor header bytes (magic, image gva/len, name gva/len, nsections, percpu). */
export const MODULE_DESC_HEADER = 56;
/** `percpu` value meaning "the module has no per-CPU section". */
export const MODULE_DESC_NO_PERCPU = 0xffff_ffff_ffff_ffffn;
/** Bytes of one placed section entry (shndx, gva, size). */
export const MODULE_DESC_ENTRY = 24;
/** Sections that fit in the one-page descriptor. */
export const MODULE_DESC_MAX_SECTIONS = Math.floor((PAGE_SIZE - MODULE_DESC_HEADER) / MODULE_DESC_ENTRY);
/** Largest module image the core copies (64 MiB; kvm.ko is 2.3 MB). */
export const MODULE_IMAGE_MAX = 64 << 20;
/** Longest module or code name. */
export const NAME_MAX = 256;

/** Patch batch header bytes (magic, count). */
export const PATCH_BATCH_HEADER = 16;
/** Bytes of one patch entry: site, len, kind, status, pad[5], old[8], new[8]. */
export const PATCH_ENTRY = 32;
/** Most patches in one batch. */
export const PATCH_BATCH_MAX = 65536;

/** Patch kind codes in a batch entry. */
export const PATCH_KIND = { ftrace: 0, 'jump-label': 1, 'static-call': 2, kprobe: 3, 'smp-lock': 4 } as const;
/** A patch kind name. */
export type PatchKindName = keyof typeof PATCH_KIND;
/** Status the core writes back into each batch entry. */
export const PATCH_STATUS = { PENDING: 0xff, APPLIED: 0, DENIED: 1, NOT_APPLIED: 2 } as const;

/** Code descriptor bytes: magic, what, image gva/len, name gva/len, key id (8), signature (64). */
export const CODE_DESC_SIZE = 56 + 8 + 64;
/** Code kinds. */
export const CODE_WHAT = { 'bpf-jit': 0, trampoline: 1 } as const;

/** A section of a module as the guest placed it. */
export interface ModuleDescSection {
  readonly shndx: number;
  readonly gva: bigint;
  readonly size: number;
}

/** Encodes a module descriptor (one page). Throws if more sections than fit: a guest bug. */
export function encodeModuleDesc(d: {
  imageGva: bigint;
  imageLen: number;
  nameGva: bigint;
  nameLen: number;
  sections: readonly ModuleDescSection[];
  /** The per-CPU pointer, when the module has `.data..percpu`. */
  percpu?: bigint;
}): Uint8Array {
  if (d.sections.length > MODULE_DESC_MAX_SECTIONS) throw new RangeError(`a module descriptor holds at most ${MODULE_DESC_MAX_SECTIONS} sections`);
  const page = new Uint8Array(PAGE_SIZE);
  const dv = new DataView(page.buffer);
  dv.setBigUint64(0, MODULE_DESC_MAGIC, true);
  dv.setBigUint64(8, d.imageGva, true);
  dv.setBigUint64(16, BigInt(d.imageLen), true);
  dv.setBigUint64(24, d.nameGva, true);
  dv.setBigUint64(32, BigInt(d.nameLen), true);
  dv.setBigUint64(40, BigInt(d.sections.length), true);
  dv.setBigUint64(48, d.percpu ?? MODULE_DESC_NO_PERCPU, true);
  d.sections.forEach((s, i) => {
    const o = MODULE_DESC_HEADER + i * MODULE_DESC_ENTRY;
    dv.setBigUint64(o, BigInt(s.shndx), true);
    dv.setBigUint64(o + 8, s.gva, true);
    dv.setBigUint64(o + 16, BigInt(s.size), true);
  });
  return page;
}

/** One patch to request. */
export interface PatchRequest {
  readonly kind: PatchKindName;
  readonly site: bigint;
  readonly oldBytes: Uint8Array;
  readonly newBytes: Uint8Array;
}

/** Encodes a text-patch batch. Throws on a patch longer than 8 bytes or too many patches. */
export function encodePatchBatch(patches: readonly PatchRequest[]): Uint8Array {
  if (patches.length > PATCH_BATCH_MAX) throw new RangeError(`a batch holds at most ${PATCH_BATCH_MAX} patches`);
  const out = new Uint8Array(PATCH_BATCH_HEADER + patches.length * PATCH_ENTRY);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, PATCH_BATCH_MAGIC, true);
  dv.setBigUint64(8, BigInt(patches.length), true);
  patches.forEach((p, i) => {
    if (p.oldBytes.length !== p.newBytes.length || p.oldBytes.length < 1 || p.oldBytes.length > 8) {
      throw new RangeError(`patch ${i}: old and new must be 1..8 bytes of equal length`);
    }
    const o = PATCH_BATCH_HEADER + i * PATCH_ENTRY;
    dv.setBigUint64(o, p.site, true);
    out[o + 8] = p.oldBytes.length;
    out[o + 9] = PATCH_KIND[p.kind];
    out[o + 10] = PATCH_STATUS.PENDING;
    out.set(p.oldBytes, o + 16);
    out.set(p.newBytes, o + 24);
  });
  return out;
}

/** Reads back the per-patch status bytes the core wrote into an encoded batch. */
export function patchStatuses(batch: Uint8Array): number[] {
  const n = Number(new DataView(batch.buffer, batch.byteOffset).getBigUint64(8, true));
  return Array.from({ length: n }, (_, i) => batch[PATCH_BATCH_HEADER + i * PATCH_ENTRY + 10] as number);
}

/** Encodes a code descriptor. */
export function encodeCodeDesc(d: {
  what: keyof typeof CODE_WHAT;
  imageGva: bigint;
  imageLen: number;
  nameGva: bigint;
  nameLen: number;
  keyId: Uint8Array;
  signature: Uint8Array;
}): Uint8Array {
  if (d.keyId.length !== 8 || d.signature.length !== 64) throw new RangeError('key id must be 8 bytes and signature 64');
  const out = new Uint8Array(CODE_DESC_SIZE);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, CODE_DESC_MAGIC, true);
  dv.setBigUint64(8, BigInt(CODE_WHAT[d.what]), true);
  dv.setBigUint64(16, d.imageGva, true);
  dv.setBigUint64(24, BigInt(d.imageLen), true);
  dv.setBigUint64(32, d.nameGva, true);
  dv.setBigUint64(40, BigInt(d.nameLen), true);
  out.set(d.keyId, 56);
  out.set(d.signature, 64);
  return out;
}

/** Encodes a kexec descriptor: where the image (bzImage) and its signed manifest (UTF-8 JSON) are. */
export function encodeKexecDesc(d: { imageGva: bigint; imageLen: number; manifestGva: bigint; manifestLen: number }): Uint8Array {
  const out = new Uint8Array(KEXEC_DESC_SIZE);
  const dv = new DataView(out.buffer);
  dv.setBigUint64(0, KEXEC_DESC_MAGIC, true);
  dv.setBigUint64(8, d.imageGva, true);
  dv.setBigUint64(16, BigInt(d.imageLen), true);
  dv.setBigUint64(24, d.manifestGva, true);
  dv.setBigUint64(32, BigInt(d.manifestLen), true);
  return out;
}
