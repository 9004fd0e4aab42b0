/**
 * The verifier's entry point for module signatures: one call that takes the bytes of a module
 * file and the keyring and answers accepted or denied, with the reason. Default-deny: only a
 * well-formed trailer whose signature verifies against an unrevoked key of the right role is
 * accepted.
 */
import { PKEY_ID_HEKI_ED25519, PKEY_ID_PKCS7, idTypeName, parseModuleSignature } from '../../shared/module-signature.ts';
import type { Keyring } from '../keyring.ts';
import { verifyModuleEd25519, type Ed25519Impl } from '../../shared/crypto/ed25519.ts';
import { verifyPkcs7ModuleSignature } from './pkcs7.ts';
import { reportProgress } from '../../shared/progress.ts';

/** The signature scheme a verdict is about; `none` when no scheme could be applied. */
export type SignatureScheme = 'ed25519' | 'pkcs7' | 'none';

/** The verdict on one module file: plain data, safe to post across the worker boundary. */
export interface ModuleSignatureVerdict {
  readonly accepted: boolean;
  readonly scheme: SignatureScheme;
  /** Why: names the signer when accepted, the problem when denied. */
  readonly reason: string;
  /** Ed25519: the 16-hex key id from the trailer. PKCS#7: the signer certificate's SHA-256 (64 hex), when found. */
  readonly keyId?: string;
  /** The ELF image without the trailer (a view into the input), when the trailer parsed. */
  readonly elf?: Uint8Array;
}

/** Options of {@link verifyModuleSignature}. */
export interface VerifyModuleOptions {
  /** Which Ed25519 implementation to run (default `node`, the fast one). */
  readonly ed25519?: Ed25519Impl;
}

/**
 * Verifies the signature trailer of a module file. Never throws.
 *
 * - no trailer: denied, "module is not signed";
 * - malformed trailer or an id_type we do not verify (PGP, X.509): denied, naming it;
 * - Ed25519: denied if the key id is revoked, unknown, or of a role other than
 *   `module-signing`, or if the signature does not verify; accepted naming the key otherwise;
 * - PKCS#7: see {@link verifyPkcs7ModuleSignature}.
 */
export function verifyModuleSignature(file: Uint8Array, keyring: Keyring, options: VerifyModuleOptions = {}): ModuleSignatureVerdict {
  // The verifier validates what crosses the worker boundary: bytes must really be bytes.
  if (!((file as unknown) instanceof Uint8Array)) {
    return { accepted: false, scheme: 'none', reason: 'module contents are not a byte array' };
  }
  // PROGRESS: one report per signature check (shared/progress.ts); the check itself is
  // milliseconds (an RSA-4096 or Ed25519 verification and a SHA-256 of the image).
  reportProgress();
  const parsed = parseModuleSignature(file);
  if (!parsed.ok) {
    if (parsed.error.kind === 'unsigned') return { accepted: false, scheme: 'none', reason: 'module is not signed' };
    return { accepted: false, scheme: 'none', reason: `malformed signature trailer: ${parsed.error.message}` };
  }
  const m = parsed.value;

  if (m.idType === PKEY_ID_HEKI_ED25519) {
    const keyId = Buffer.from(m.keyId).toString('hex');
    const denied = (reason: string): ModuleSignatureVerdict => ({ accepted: false, scheme: 'ed25519', reason, keyId, elf: m.elf });
    // TRUST: revocation is checked first, so a revoked key is refused even if the keyring holds it.
    if (keyring.isKeyRevoked(keyId)) return denied(`key ${keyId} is revoked`);
    const key = keyring.ed25519Key(keyId);
    if (key === undefined) return denied(`unknown key ${keyId}: not in the keyring`);
    if (key.role !== 'module-signing') return denied(`key ${keyId} has role ${key.role}, not module-signing`);
    if (!verifyModuleEd25519(m.elf, m.signature, key.publicKey, options.ed25519)) {
      return denied(`Ed25519 signature mismatch for key ${keyId}`);
    }
    // TRUST: the trailer's signer name is not covered by the signature, so the reason names
    // the signer by what the keyring says about the key, never by the name in the trailer.
    const from = key.source !== undefined ? ` (${key.source})` : '';
    return { accepted: true, scheme: 'ed25519', reason: `signed by ${key.role} key ${keyId}${from}`, keyId, elf: m.elf };
  }

  if (m.idType === PKEY_ID_PKCS7) {
    const v = verifyPkcs7ModuleSignature(m.elf, m.signature, keyring);
    const keyId = v.signer?.sha256;
    return {
      accepted: v.ok,
      scheme: 'pkcs7',
      reason: v.reason,
      ...(keyId !== undefined ? { keyId } : {}),
      elf: m.elf,
    };
  }

  return { accepted: false, scheme: 'none', reason: `unsupported signature type ${idTypeName(m.idType)}`, elf: m.elf };
}
