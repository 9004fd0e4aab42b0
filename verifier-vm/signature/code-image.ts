/**
 * Signatures and page hashes of code images that are not modules: eBPF JIT output and
 * trampolines (the `code-load` request).
 *
 * The signed message is `"heki-sim code image v1\0" || SHA-256(what || addr || image)`, where
 * `what` is one byte (0 bpf-jit, 1 trampoline) and `addr` the page-aligned load address as a
 * little-endian u64: a detached Ed25519 signature by a `module-signing` or `kernel-vendor` key.
 * JIT code is position-dependent (relative calls), so the signature binds the address: the
 * same image placed elsewhere does not verify. The domain prefix keeps a code image signature
 * from ever verifying as a module or manifest signature, and vice versa.
 *
 * Page hashes: the image is placed at a page-aligned address; page k covers image bytes
 * `[k*4096, (k+1)*4096)`, and the last page is padded with zeros to 4096 bytes. Each hash is
 * the SHA-256 (lowercase hex) of those 4096 bytes, keyed by `addr + k*4096`, which is what
 * the core computes over the frozen page content of a set-memory range.
 */
import { createHash } from 'node:crypto';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../shared/addr.ts';
import { signEd25519, verifyEd25519, type Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';

/** The domain-separation prefix of a code image signature (ends in NUL). */
export const CODE_IMAGE_SIGNATURE_DOMAIN = 'heki-sim code image v1\0';

const DOMAIN_BYTES = new TextEncoder().encode(CODE_IMAGE_SIGNATURE_DOMAIN);

/** SHA-256 of `bytes`, lowercase hex. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Where a code image goes: what it is and its page-aligned load address. */
export interface CodePlacement {
  readonly what: 'bpf-jit' | 'trampoline';
  readonly addr: bigint;
}

/** The message a code image signature covers (see the file comment). */
export function codeImageSignatureMessage(image: Uint8Array, placement: CodePlacement): Uint8Array {
  const head = new Uint8Array(9);
  head[0] = placement.what === 'bpf-jit' ? 0 : 1;
  new DataView(head.buffer).setBigUint64(1, BigInt.asUintN(64, placement.addr), true);
  const digest = createHash('sha256').update(head).update(image).digest();
  const msg = new Uint8Array(DOMAIN_BYTES.length + digest.length);
  msg.set(DOMAIN_BYTES, 0);
  msg.set(digest, DOMAIN_BYTES.length);
  return msg;
}

/** Signs a code image: the 64-byte detached signature a `code-load` request carries. */
export function signCodeImage(image: Uint8Array, placement: CodePlacement, keyPair: Ed25519KeyPair): Uint8Array {
  return signEd25519(codeImageSignatureMessage(image, placement), keyPair.secretKey);
}

/** Verifies a code image signature with a raw Ed25519 public key. Never throws. */
export function verifyCodeImageSignature(image: Uint8Array, placement: CodePlacement, signature: Uint8Array, publicKey: Uint8Array): boolean {
  return verifyEd25519(codeImageSignatureMessage(image, placement), signature, publicKey);
}

/**
 * The SHA-256 of every 4 KiB page the image occupies when placed at page-aligned `addr`, by
 * page address; the tail of the last page counts as zeros (see the file comment).
 */
export function codeImagePageHashes(addr: bigint, image: Uint8Array): Map<bigint, string> {
  const out = new Map<bigint, string>();
  const pages = Math.ceil(image.length / PAGE_SIZE);
  for (let k = 0; k < pages; k++) {
    const page = new Uint8Array(PAGE_SIZE);
    page.set(image.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE));
    out.set(addr + BigInt(k) * PAGE_SIZE_N, sha256Hex(page));
  }
  return out;
}
