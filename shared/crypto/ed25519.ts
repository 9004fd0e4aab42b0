/**
 * heki-sim's Ed25519 module signatures (trailer id_type PKEY_ID_HEKI_ED25519).
 *
 * The signed message is a domain-separation prefix followed by the SHA-256 digest of the ELF
 * image: `"heki-sim module signature v1\0" || SHA-256(elf)`. The digest is computed with
 * node:crypto, so a multi-megabyte module is hashed at memory speed and Ed25519 (which hashes
 * its message again internally with SHA-512) only sees 61 bytes. The prefix keeps a module
 * signature from ever being valid as any other heki signature (a manifest, say) and vice versa.
 *
 * Two verifiers are provided and must agree: {@link verifyEd25519Nacl} (tweetnacl, pure JS,
 * the reference) and {@link verifyEd25519Node} (node:crypto / OpenSSL, the fast one used by the
 * verifier VM). Both reject a non-canonical `S` (S >= L), and a public key that is not
 * canonically encoded or of small order, before verifying, so they also agree on malleated
 * signatures and on the keys where tweetnacl and OpenSSL alone would not check.
 */
import { createHash, createPublicKey, verify as cryptoVerify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { ed25519EncodingProblem } from './ed25519-public-key.ts';

/** The domain-separation prefix of the message a heki module signature covers (ends in NUL). */
export const MODULE_SIGNATURE_DOMAIN = 'heki-sim module signature v1\0';

const DOMAIN_BYTES = new TextEncoder().encode(MODULE_SIGNATURE_DOMAIN);

/** Ed25519 public key length. */
export const ED25519_PUBLIC_KEY_LEN = 32;
/** Ed25519 seed (private key) length. */
export const ED25519_SEED_LEN = 32;
/** Ed25519 signature length. */
export const ED25519_SIGNATURE_LEN = 64;
/** Length of a heki key id: the first 8 bytes of SHA-256(public key). */
export const ED25519_KEY_ID_LEN = 8;

/** SubjectPublicKeyInfo DER prefix for an Ed25519 key (RFC 8410): SEQ { SEQ { OID 1.3.101.112 }, BIT STRING }. */
const SPKI_ED25519_PREFIX = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]);

/** The group order L = 2^252 + 27742317777372353535851937790883648493, little-endian (RFC 8032 5.1). */
const ORDER_L_LE = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
]);

/** An Ed25519 key pair. `secretKey` is tweetnacl's 64-byte form (seed || public key). */
export interface Ed25519KeyPair {
  readonly seed: Uint8Array;
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

/** Which verifier to run. */
export type Ed25519Impl = 'node' | 'tweetnacl';

/** A fresh random key pair (randomness from tweetnacl, which uses node:crypto's CSPRNG). */
export function generateEd25519KeyPair(): Ed25519KeyPair {
  return ed25519KeyPairFromSeed(nacl.randomBytes(ED25519_SEED_LEN));
}

/** The key pair of a 32-byte seed. Throws if the seed is not 32 bytes (a caller bug, not input). */
export function ed25519KeyPairFromSeed(seed: Uint8Array): Ed25519KeyPair {
  if (seed.length !== ED25519_SEED_LEN) throw new RangeError(`Ed25519 seed must be ${ED25519_SEED_LEN} bytes, got ${seed.length}`);
  const kp = nacl.sign.keyPair.fromSeed(Uint8Array.from(seed));
  return { seed: Uint8Array.from(seed), publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/** The 8-byte key id of a public key: SHA-256(publicKey)[0..8). */
export function ed25519KeyId(publicKey: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(publicKey).digest().subarray(0, ED25519_KEY_ID_LEN));
}

/** The key id as 16 lowercase hex digits, the form used in key files, revocation lists and messages. */
export function ed25519KeyIdHex(publicKey: Uint8Array): string {
  return Buffer.from(ed25519KeyId(publicKey)).toString('hex');
}

/** The message a module signature covers: {@link MODULE_SIGNATURE_DOMAIN} || SHA-256(elf). */
export function moduleSignatureMessage(elf: Uint8Array): Uint8Array {
  const digest = createHash('sha256').update(elf).digest();
  const msg = new Uint8Array(DOMAIN_BYTES.length + digest.length);
  msg.set(DOMAIN_BYTES, 0);
  msg.set(digest, DOMAIN_BYTES.length);
  return msg;
}

/** Signs an arbitrary message (plain Ed25519, RFC 8032). `secretKey` is the 64-byte tweetnacl form. */
export function signEd25519(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return nacl.sign.detached(message, secretKey);
}

/** Signs a module's ELF image: the 64-byte signature to put in an Ed25519 trailer. */
export function signModuleEd25519(elf: Uint8Array, keyPair: Ed25519KeyPair): Uint8Array {
  return signEd25519(moduleSignatureMessage(elf), keyPair.secretKey);
}

/** Is the scalar S (second half of the signature) below the group order L? RFC 8032 5.1.7 step 1. */
function hasCanonicalS(signature: Uint8Array): boolean {
  for (let i = 31; i >= 0; i--) {
    const s = signature[32 + i]!;
    const l = ORDER_L_LE[i]!;
    if (s < l) return true;
    if (s > l) return false;
  }
  return false; // S == L
}

/**
 * The checks both verifiers make before any curve arithmetic, so that they agree: sizes, a
 * canonical S, and a public key that is canonically encoded and not of small order
 * (ed25519-public-key.ts; tweetnacl and OpenSSL take y >= p and small-order keys).
 */
function wellFormed(signature: Uint8Array, publicKey: Uint8Array): boolean {
  return (
    signature.length === ED25519_SIGNATURE_LEN &&
    publicKey.length === ED25519_PUBLIC_KEY_LEN &&
    hasCanonicalS(signature) &&
    ed25519EncodingProblem(publicKey) === undefined
  );
}

/** Verifies with tweetnacl. False for wrong sizes, non-canonical S, a refused key, or a bad signature. Never throws. */
export function verifyEd25519Nacl(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (!wellFormed(signature, publicKey)) return false;
  try {
    return nacl.sign.detached.verify(message, signature, publicKey);
  } catch {
    return false;
  }
}

// Cache of KeyObjects by public key (hex). Keyrings hold a handful of keys; the bound only stops
// a stream of distinct keys from growing the map without limit.
const KEY_OBJECT_CACHE_MAX = 1024;
const keyObjectCache = new Map<string, KeyObject | null>();

/**
 * The node:crypto KeyObject for a raw 32-byte Ed25519 public key, built once per key from the
 * SPKI DER form and cached. Null if OpenSSL rejects the key.
 */
export function ed25519KeyObject(publicKey: Uint8Array): KeyObject | null {
  const hex = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString('hex');
  const cached = keyObjectCache.get(hex);
  if (cached !== undefined) return cached;
  let key: KeyObject | null;
  try {
    const der = Buffer.concat([SPKI_ED25519_PREFIX, publicKey]);
    key = createPublicKey({ key: der, format: 'der', type: 'spki' });
  } catch {
    key = null;
  }
  if (keyObjectCache.size >= KEY_OBJECT_CACHE_MAX) keyObjectCache.clear();
  keyObjectCache.set(hex, key);
  return key;
}

/** Verifies with node:crypto (OpenSSL). False for wrong sizes, non-canonical S, a refused key, or a bad signature. Never throws. */
export function verifyEd25519Node(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (!wellFormed(signature, publicKey)) return false;
  const key = ed25519KeyObject(publicKey);
  if (key === null) return false;
  try {
    return cryptoVerify(null, message, key, signature);
  } catch {
    return false;
  }
}

/** Verifies a plain Ed25519 signature with the chosen implementation (default: node). */
export function verifyEd25519(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array, impl: Ed25519Impl = 'node'): boolean {
  return impl === 'node' ? verifyEd25519Node(message, signature, publicKey) : verifyEd25519Nacl(message, signature, publicKey);
}

/** Verifies a module's Ed25519 signature over {@link moduleSignatureMessage}(elf). Never throws. */
export function verifyModuleEd25519(elf: Uint8Array, signature: Uint8Array, publicKey: Uint8Array, impl: Ed25519Impl = 'node'): boolean {
  return verifyEd25519(moduleSignatureMessage(elf), signature, publicKey, impl);
}
