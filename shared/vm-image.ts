/**
 * The signed VM state image: what a hibernation writes to the emulated disk and what a
 * migration writes to a snapshot file (hypervisor/vmm/lifecycle/). The VMM that saved the VM
 * signs it with its per-VM Ed25519 key; the verifier (a `vmm` key of its keyring) and, for a
 * migration, the destination VMM (the source's key, given by the operator) check it before
 * anything in it is used. The format is shared because both sides of the verifier boundary
 * read it.
 *
 * Layout (integers little-endian):
 * ```
 * 0        "HEKIVMI1"                      magic
 * 8        u32 H                           header length
 * 12       header, H bytes of UTF-8 JSON   {type, version, kind, vm, vmId, created, keyId, sections: [{name, length, sha256}]}
 * 12+H     u32 S                           signature length (64)
 * 16+H     signature, S bytes              Ed25519 over VM_IMAGE_SIGNATURE_DOMAIN || SHA-256(header bytes)
 * 16+H+S   the sections' bytes, in header order, back to back, nothing after the last
 * ```
 * The signature covers the header and, through each section's SHA-256 in it, every byte of
 * every section. `vm` and `vmId` bind the image to one VM: an image of another VM (or of the
 * same name with another identity) is refused.
 *
 * Section payloads: `memory` is raw pages (hypervisor/vmm/lifecycle/vm-state-image.ts); every
 * state section is JSON of a declared schema with its own version (shared/state-section.ts,
 * shared/state-schema.ts), never a runtime's serialisation, so an image written by one Node
 * version restores under another (ARCHITECTURE.md rule 10). Version history of this format:
 * - 1: state sections were node:v8 structured clones; no longer read (the reader says so);
 * - 2: state sections are declared-schema JSON.
 */
import { createHash } from 'node:crypto';
import { type Result, err, ok } from './result.ts';

/** Magic of a VM state image: "HEKIVMI1". */
export const VM_IMAGE_MAGIC = new TextEncoder().encode('HEKIVMI1');
/** `type` of the header. */
export const VM_IMAGE_TYPE = 'heki-vm-image';
/** Current version (the only one read). */
export const VM_IMAGE_VERSION = 2;
/** Domain separation for image signatures. */
export const VM_IMAGE_SIGNATURE_DOMAIN = 'heki-sim VM state image v1\0';
/** Longest header accepted (1 MiB). */
export const VM_IMAGE_HEADER_MAX = 1 << 20;

/** What the image was made for. */
export type VmImageKind = 'hibernate' | 'migration';

/** One section as the header describes it. */
export interface VmImageSectionInfo {
  readonly name: string;
  readonly length: number;
  /** SHA-256 of the section's bytes, lowercase hex. */
  readonly sha256: string;
}

/** The signed header. */
export interface VmImageHeader {
  readonly type: string;
  readonly version: number;
  readonly kind: VmImageKind;
  /** The VM's name (the `vm` of its verifier requests). */
  readonly vm: string;
  /** The VM's identity: 32 hex digits the VMM drew when it created the VM; kept across migration. */
  readonly vmId: string;
  /** When the image was made, ISO 8601. */
  readonly created: string;
  /** The signing key's id (16 hex digits). */
  readonly keyId: string;
  readonly sections: readonly VmImageSectionInfo[];
}

/** A parsed image (structure only: the signature is not checked yet). */
export interface VmImage {
  readonly header: VmImageHeader;
  /** The header's exact bytes (what the signature's digest covers). */
  readonly headerBytes: Uint8Array;
  readonly signature: Uint8Array;
  /** Section bytes by name (views into the image). */
  readonly sections: ReadonlyMap<string, Uint8Array>;
}

/** Why an image is refused; `message` names the problem. */
export interface VmImageError {
  readonly kind: 'malformed' | 'signature' | 'untrusted-key' | 'digest' | 'identity' | 'kind';
  readonly message: string;
}

/** A signing key: its id and a function giving the 64-byte Ed25519 signature of a message. */
export interface VmImageSigner {
  readonly keyId: string;
  sign(message: Uint8Array): Uint8Array;
}

/**
 * Checks a signature with a trusted key: undefined when it verifies, else why not (unknown or
 * revoked key: kind `untrusted-key`; a bad signature: kind `signature`).
 */
export type VmImageVerifier = (
  keyId: string,
  message: Uint8Array,
  signature: Uint8Array,
) => { readonly kind: 'untrusted-key' | 'signature'; readonly message: string } | undefined;

const sha256 = (b: Uint8Array): Uint8Array => new Uint8Array(createHash('sha256').update(b).digest());
const sha256Hex = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** The message a signature covers: the domain string and the SHA-256 of the header bytes. */
export function vmImageSignedMessage(headerBytes: Uint8Array): Uint8Array {
  const domain = new TextEncoder().encode(VM_IMAGE_SIGNATURE_DOMAIN);
  const out = new Uint8Array(domain.length + 32);
  out.set(domain, 0);
  out.set(sha256(headerBytes), domain.length);
  return out;
}

/** Builds and signs an image. */
export function encodeVmImage(
  meta: { readonly kind: VmImageKind; readonly vm: string; readonly vmId: string; readonly created?: Date },
  sections: ReadonlyArray<{ readonly name: string; readonly bytes: Uint8Array }>,
  sign: VmImageSigner,
): Uint8Array {
  const names = new Set<string>();
  for (const s of sections) {
    if (names.has(s.name)) throw new Error(`internal: two sections named ${s.name}`);
    names.add(s.name);
  }
  const keyId = sign.keyId;
  const header: VmImageHeader = {
    type: VM_IMAGE_TYPE,
    version: VM_IMAGE_VERSION,
    kind: meta.kind,
    vm: meta.vm,
    vmId: meta.vmId,
    created: (meta.created ?? new Date()).toISOString(),
    keyId,
    sections: sections.map((s) => ({ name: s.name, length: s.bytes.length, sha256: sha256Hex(s.bytes) })),
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const signature = sign.sign(vmImageSignedMessage(headerBytes));
  const total = 12 + headerBytes.length + 4 + signature.length + sections.reduce((a, s) => a + s.bytes.length, 0);
  const out = new Uint8Array(total);
  const dv = new DataView(out.buffer);
  out.set(VM_IMAGE_MAGIC, 0);
  dv.setUint32(8, headerBytes.length, true);
  out.set(headerBytes, 12);
  let at = 12 + headerBytes.length;
  dv.setUint32(at, signature.length, true);
  out.set(signature, at + 4);
  at += 4 + signature.length;
  for (const s of sections) {
    out.set(s.bytes, at);
    at += s.bytes.length;
  }
  return out;
}

const HEX16 = /^[0-9a-f]{16}$/;
const HEX32 = /^[0-9a-f]{32}$/;
const HEX64 = /^[0-9a-f]{64}$/;
const malformed = (message: string): Result<never, VmImageError> => err({ kind: 'malformed', message });

/** Parses an image's structure; names the first problem. Never throws. */
export function decodeVmImage(bytes: Uint8Array): Result<VmImage, VmImageError> {
  if (bytes.length < 16) return malformed(`${bytes.length} bytes is too short for a VM state image`);
  if (!VM_IMAGE_MAGIC.every((b, i) => bytes[i] === b)) return malformed('no "HEKIVMI1" magic: not a heki VM state image');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const h = dv.getUint32(8, true);
  if (h === 0 || h > VM_IMAGE_HEADER_MAX || 12 + h + 4 > bytes.length) return malformed(`header length ${h} does not fit the image (${bytes.length} bytes)`);
  const headerBytes = bytes.subarray(12, 12 + h);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headerBytes));
  } catch (e) {
    return malformed(`the header is not UTF-8 JSON: ${e instanceof Error ? e.message : String(e)}`);
  }
  const hd = checkHeader(parsed);
  if (!hd.ok) return hd;
  const sLen = dv.getUint32(12 + h, true);
  if (sLen !== 64) return malformed(`signature length ${sLen} is not 64`);
  let at = 16 + h + sLen;
  if (at > bytes.length) return malformed('the image ends inside its signature');
  const signature = bytes.subarray(16 + h, at);
  const sections = new Map<string, Uint8Array>();
  for (const s of hd.value.sections) {
    if (at + s.length > bytes.length) return malformed(`section ${s.name} (${s.length} bytes) runs past the end of the image`);
    sections.set(s.name, bytes.subarray(at, at + s.length));
    at += s.length;
  }
  if (at !== bytes.length) return malformed(`${bytes.length - at} bytes follow the last section`);
  return ok({ header: hd.value, headerBytes, signature, sections });
}

function checkHeader(v: unknown): Result<VmImageHeader, VmImageError> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return malformed('the header is not a JSON object');
  const o = v as Record<string, unknown>;
  if (o.type !== VM_IMAGE_TYPE) return malformed(`header type must be "${VM_IMAGE_TYPE}"`);
  if (o.version === 1)
    return malformed(
      `header version 1 is not ${VM_IMAGE_VERSION}: version 1 images hold node:v8 structured clones, which this heki-sim no longer reads; take the image again`,
    );
  if (o.version !== VM_IMAGE_VERSION)
    return malformed(`header version ${JSON.stringify(o.version)} is not ${VM_IMAGE_VERSION}, the only version this heki-sim reads`);
  if (o.kind !== 'hibernate' && o.kind !== 'migration') return malformed('header kind must be hibernate or migration');
  if (typeof o.vm !== 'string' || o.vm === '' || o.vm.length > 256) return malformed('header vm must be a name of 1 to 256 characters');
  if (typeof o.vmId !== 'string' || !HEX32.test(o.vmId)) return malformed('header vmId must be 32 hex digits');
  if (typeof o.created !== 'string' || Number.isNaN(Date.parse(o.created))) return malformed('header created must be an ISO 8601 time');
  if (typeof o.keyId !== 'string' || !HEX16.test(o.keyId)) return malformed('header keyId must be 16 hex digits');
  if (!Array.isArray(o.sections) || o.sections.length > 64) return malformed('header sections must be a list of at most 64');
  const seen = new Set<string>();
  for (const [i, s] of (o.sections as unknown[]).entries()) {
    const x = s as Record<string, unknown> | null;
    if (typeof x !== 'object' || x === null) return malformed(`header sections[${i}] is not an object`);
    if (typeof x.name !== 'string' || !/^[a-z][a-z0-9-]{0,31}$/.test(x.name)) return malformed(`header sections[${i}].name must be a short lowercase name`);
    if (seen.has(x.name)) return malformed(`header names section ${x.name} twice`);
    seen.add(x.name);
    if (typeof x.length !== 'number' || !Number.isSafeInteger(x.length) || x.length < 0)
      return malformed(`header sections[${i}].length must be a non-negative integer`);
    if (typeof x.sha256 !== 'string' || !HEX64.test(x.sha256)) return malformed(`header sections[${i}].sha256 must be 64 hex digits`);
  }
  return ok(o as unknown as VmImageHeader);
}

/**
 * Checks an image: its signature (through `verify`, which knows the trusted keys), every
 * section's digest, and that it is of `expect.kind` and for `expect.vm` (and `expect.vmId`,
 * when given). Every refusal names what failed.
 */
export function checkVmImage(
  image: VmImage,
  verify: VmImageVerifier,
  expect: { readonly vm: string; readonly vmId?: string; readonly kind?: VmImageKind },
): Result<VmImage, VmImageError> {
  const bad = verify(image.header.keyId, vmImageSignedMessage(image.headerBytes), image.signature);
  if (bad) return err(bad);
  for (const s of image.header.sections) {
    const got = sha256Hex(image.sections.get(s.name)!);
    if (got !== s.sha256) {
      return err({
        kind: 'digest',
        message: `section ${s.name}: SHA-256 ${got} differs from the signed ${s.sha256}: the image was modified after it was signed`,
      });
    }
  }
  if (image.header.vm !== expect.vm) return err({ kind: 'identity', message: `the image is of VM '${image.header.vm}', not '${expect.vm}'` });
  if (expect.vmId !== undefined && image.header.vmId !== expect.vmId)
    return err({ kind: 'identity', message: `the image is of VM identity ${image.header.vmId}, not ${expect.vmId}` });
  if (expect.kind !== undefined && image.header.kind !== expect.kind)
    return err({ kind: 'kind', message: `the image was made for ${image.header.kind}, not ${expect.kind}` });
  return ok(image);
}
