/**
 * RSASSA-PKCS1-v1_5 verification (RFC 8017 8.2.2), the one RSA check the verifier makes (the
 * signature of a PKCS#7 module signature). node:crypto (OpenSSL) rebuilds the expected
 * EMSA-PKCS1-v1_5 encoding, DigestInfo with its NULL parameters included, and compares it
 * whole, as the kernel's crypto/rsa-pkcs1pad.c does (it compares the DigestInfo prefix byte
 * for byte): a DigestInfo without the NULL (Wycheproof's "MissingNull", which RFC 8017 lets
 * a verifier accept) is refused by both. test/unit/wycheproof.test.ts holds this to the
 * Wycheproof vectors.
 */
import { constants, verify as cryptoVerify, type KeyObject } from 'node:crypto';

/** The digests a module signature may use, by node:crypto name. */
export type RsaDigest = 'sha256' | 'sha384' | 'sha512';

/** Does `signature` verify over `message` with RSA `publicKey` and `hash`? False on any error; never throws. */
export function verifyRsaPkcs1v15(hash: RsaDigest, message: Uint8Array, publicKey: KeyObject, signature: Uint8Array): boolean {
  if (publicKey.asymmetricKeyType !== 'rsa') return false;
  try {
    return cryptoVerify(hash, message, { key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
  } catch {
    return false;
  }
}
