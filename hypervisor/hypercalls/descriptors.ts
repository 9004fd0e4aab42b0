/**
 * Bounded readers for the descriptors of heki-sim's authenticated hypercalls
 * (shared/heki-descriptors.ts). TRUST: descriptors are guest memory; every count and length
 * is checked against its limit before it is used, and every failure names the problem
 * (the hypercall returns -KVM_EINVAL).
 */
import { PAGE_SIZE, hex, isAddrError, tryGpa, type GuestPhysAddr } from '../../shared/addr.ts';
import {
  CODE_DESC_MAGIC,
  CODE_DESC_SIZE,
  CODE_WHAT,
  KEXEC_DESC_MAGIC,
  KEXEC_DESC_SIZE,
  KEXEC_IMAGE_MAX,
  KEXEC_MANIFEST_MAX,
  MODULE_DESC_ENTRY,
  MODULE_DESC_HEADER,
  MODULE_DESC_MAGIC,
  MODULE_DESC_MAX_SECTIONS,
  MODULE_DESC_NO_PERCPU,
  MODULE_IMAGE_MAX,
  NAME_MAX,
  PATCH_BATCH_HEADER,
  PATCH_BATCH_MAGIC,
  PATCH_BATCH_MAX,
  PATCH_ENTRY,
  PATCH_KIND,
  type ModuleDescSection,
  type PatchKindName,
} from '../../shared/heki-descriptors.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { KVM_STATUS } from '../../shared/abi.ts';
import type { Authenticator, ModuleRecord } from '../core/auth/authenticator.ts';
import type { HypercallContext } from './context.ts';
import type { GuestMemoryAccess } from '../memory/guest-memory.ts';

/**
 * The guest-physical address `raw` (a hypercall argument: the guest's), when it is aligned to
 * `align` and [raw, raw + len) lies inside guest memory; else undefined.
 */
export function guestRange(mem: GuestMemoryAccess, raw: bigint, len: number, align: bigint): GuestPhysAddr | undefined {
  if (raw % align !== 0n) return undefined;
  const at = tryGpa(raw);
  return isAddrError(at) || !mem.contains(at, len) ? undefined : at;
}

/** A module descriptor as read. */
export interface ModuleDesc {
  readonly imageGva: bigint;
  readonly imageLen: number;
  readonly nameGva: bigint;
  readonly nameLen: number;
  readonly sections: readonly ModuleDescSection[];
  /** The per-CPU pointer, when the module has a per-CPU section. */
  readonly percpu: bigint | undefined;
}

/** Reads the module descriptor at `gpa`. */
export function readModuleDesc(mem: GuestMemoryAccess, gpa: bigint): Result<ModuleDesc, string> {
  const at = guestRange(mem, gpa, PAGE_SIZE, BigInt(PAGE_SIZE));
  if (at === undefined) return err(`module descriptor at ${hex(gpa)} is unaligned or outside guest memory`);
  const page = mem.read(at, PAGE_SIZE);
  const dv = new DataView(page.buffer);
  if (dv.getBigUint64(0, true) !== MODULE_DESC_MAGIC) return err('module descriptor has a bad magic');
  const imageLen = dv.getBigUint64(16, true);
  const nameLen = dv.getBigUint64(32, true);
  const n = dv.getBigUint64(40, true);
  if (imageLen === 0n || imageLen > BigInt(MODULE_IMAGE_MAX)) return err(`module image length ${imageLen} is not in 1..${MODULE_IMAGE_MAX}`);
  if (nameLen === 0n || nameLen > BigInt(NAME_MAX)) return err(`module name length ${nameLen} is not in 1..${NAME_MAX}`);
  if (n === 0n || n > BigInt(MODULE_DESC_MAX_SECTIONS)) return err(`module descriptor claims ${n} sections; 1..${MODULE_DESC_MAX_SECTIONS} fit`);
  const sections: ModuleDescSection[] = [];
  for (let i = 0; i < Number(n); i++) {
    const o = MODULE_DESC_HEADER + i * MODULE_DESC_ENTRY;
    const shndx = dv.getBigUint64(o, true);
    const size = dv.getBigUint64(o + 16, true);
    if (shndx === 0n || shndx > 0xffffn) return err(`section entry ${i}: bad section index ${shndx}`);
    if (size > BigInt(MODULE_IMAGE_MAX)) return err(`section entry ${i}: size ${size} is too large`);
    sections.push({ shndx: Number(shndx), gva: dv.getBigUint64(o + 8, true), size: Number(size) });
  }
  const percpu = dv.getBigUint64(48, true);
  return ok({
    imageGva: dv.getBigUint64(8, true),
    imageLen: Number(imageLen),
    nameGva: dv.getBigUint64(24, true),
    nameLen: Number(nameLen),
    sections,
    percpu: percpu === MODULE_DESC_NO_PERCPU ? undefined : percpu,
  });
}

/** One entry of a patch batch as read. */
export interface PatchEntry {
  readonly index: number;
  readonly kind: PatchKindName;
  readonly site: bigint;
  readonly oldBytes: Uint8Array;
  readonly newBytes: Uint8Array;
}

const KIND_BY_CODE = new Map<number, PatchKindName>(Object.entries(PATCH_KIND).map(([k, v]) => [v, k as PatchKindName]));

/** Reads the patch batch at `gpa` (physically contiguous). */
export function readPatchBatch(mem: GuestMemoryAccess, gpa: bigint): Result<PatchEntry[], string> {
  const at = guestRange(mem, gpa, PATCH_BATCH_HEADER, 8n);
  if (at === undefined) return err(`patch batch at ${hex(gpa)} is unaligned or outside guest memory`);
  const head = new DataView(mem.read(at, PATCH_BATCH_HEADER).buffer);
  if (head.getBigUint64(0, true) !== PATCH_BATCH_MAGIC) return err('patch batch has a bad magic');
  const count = head.getBigUint64(8, true);
  if (count === 0n || count > BigInt(PATCH_BATCH_MAX)) return err(`patch batch claims ${count} patches; 1..${PATCH_BATCH_MAX} allowed`);
  const bytes = PATCH_BATCH_HEADER + Number(count) * PATCH_ENTRY;
  if (!mem.contains(at, bytes)) return err(`patch batch of ${count} entries runs past the end of guest memory`);
  const all = mem.read(at, bytes);
  const dv = new DataView(all.buffer);
  const out: PatchEntry[] = [];
  for (let i = 0; i < Number(count); i++) {
    const o = PATCH_BATCH_HEADER + i * PATCH_ENTRY;
    const len = all[o + 8] as number;
    const kind = KIND_BY_CODE.get(all[o + 9] as number);
    if (len < 1 || len > 8) return err(`patch ${i}: length ${len} is not 1..8`);
    if (!kind) return err(`patch ${i}: unknown kind code ${all[o + 9]}`);
    out.push({ index: i, kind, site: dv.getBigUint64(o, true), oldBytes: all.slice(o + 16, o + 16 + len), newBytes: all.slice(o + 24, o + 24 + len) });
  }
  return ok(out);
}

/** A code descriptor as read. */
export interface CodeDesc {
  readonly what: keyof typeof CODE_WHAT;
  readonly imageGva: bigint;
  readonly imageLen: number;
  readonly nameGva: bigint;
  readonly nameLen: number;
  readonly keyId: Uint8Array;
  readonly signature: Uint8Array;
}

/** Reads the code descriptor at `gpa`. */
export function readCodeDesc(mem: GuestMemoryAccess, gpa: bigint): Result<CodeDesc, string> {
  const at = guestRange(mem, gpa, CODE_DESC_SIZE, 8n);
  if (at === undefined) return err(`code descriptor at ${hex(gpa)} is unaligned or outside guest memory`);
  const b = mem.read(at, CODE_DESC_SIZE);
  const dv = new DataView(b.buffer);
  if (dv.getBigUint64(0, true) !== CODE_DESC_MAGIC) return err('code descriptor has a bad magic');
  const whatCode = dv.getBigUint64(8, true);
  const what = (Object.keys(CODE_WHAT) as Array<keyof typeof CODE_WHAT>).find((k) => BigInt(CODE_WHAT[k]) === whatCode);
  if (!what) return err(`code descriptor: unknown kind ${whatCode}`);
  const imageLen = dv.getBigUint64(24, true);
  const nameLen = dv.getBigUint64(40, true);
  const imageGva = dv.getBigUint64(16, true);
  if (imageLen === 0n || imageLen > BigInt(MODULE_IMAGE_MAX)) return err(`code image length ${imageLen} is not in 1..${MODULE_IMAGE_MAX}`);
  if (nameLen === 0n || nameLen > BigInt(NAME_MAX)) return err(`code name length ${nameLen} is not in 1..${NAME_MAX}`);
  if (imageGva % BigInt(PAGE_SIZE) !== 0n) return err(`code image at ${hex(imageGva)} is not page-aligned`);
  return ok({
    what,
    imageGva,
    imageLen: Number(imageLen),
    nameGva: dv.getBigUint64(32, true),
    nameLen: Number(nameLen),
    keyId: b.slice(56, 64),
    signature: b.slice(64, 128),
  });
}

/** A kexec descriptor as read. */
export interface KexecDesc {
  readonly imageGva: bigint;
  readonly imageLen: number;
  readonly manifestGva: bigint;
  readonly manifestLen: number;
}

/** Reads the kexec descriptor at `gpa`. */
export function readKexecDesc(mem: GuestMemoryAccess, gpa: bigint): Result<KexecDesc, string> {
  const at = guestRange(mem, gpa, KEXEC_DESC_SIZE, 8n);
  if (at === undefined) return err(`kexec descriptor at ${hex(gpa)} is unaligned or outside guest memory`);
  const dv = new DataView(mem.read(at, KEXEC_DESC_SIZE).buffer);
  if (dv.getBigUint64(0, true) !== KEXEC_DESC_MAGIC) return err('kexec descriptor has a bad magic');
  const imageLen = dv.getBigUint64(16, true);
  const manifestLen = dv.getBigUint64(32, true);
  if (imageLen === 0n || imageLen > BigInt(KEXEC_IMAGE_MAX)) return err(`kexec image length ${imageLen} is not in 1..${KEXEC_IMAGE_MAX}`);
  if (manifestLen === 0n || manifestLen > BigInt(KEXEC_MANIFEST_MAX)) return err(`kexec manifest length ${manifestLen} is not in 1..${KEXEC_MANIFEST_MAX}`);
  return ok({ imageGva: dv.getBigUint64(8, true), imageLen: Number(imageLen), manifestGva: dv.getBigUint64(24, true), manifestLen: Number(manifestLen) });
}

/** Decodes a guest-supplied name (UTF-8, no NULs), or undefined. */
export function decodeName(bytes: Uint8Array | undefined): string | undefined {
  if (!bytes) return undefined;
  const name = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  return name.length > 0 && !name.includes('\0') ? name : undefined;
}

/**
 * The loaded module named by the guest's a0 (its name's guest-virtual address) and a1 (the
 * name's length, 1 to 256), with the core's record of it; or the status to return:
 * -KVM_EOPNOTSUPP without a verifier, -KVM_EINVAL for a bad name or one no module has.
 */
export function namedModule({ core, vcpu }: HypercallContext, a0: bigint, a1: bigint): { auth: Authenticator; name: string; rec: ModuleRecord } | number {
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  if (a1 === 0n || a1 > 256n) return -KVM_STATUS.KVM_EINVAL;
  const name = decodeName(vcpu.readForCore(a0, Number(a1)));
  const rec = name === undefined ? undefined : auth.modules.get(name);
  return name !== undefined && rec ? { auth, name, rec } : -KVM_STATUS.KVM_EINVAL;
}
