/**
 * Ed25519 signing and checking of VM state images (shared/vm-image.ts), the scheme both
 * sides use: the VMM signs with its per-VM key and a migration's destination VMM checks
 * against the one source key its operator trusts; the verifier checks against the `vmm` keys
 * of its keyring (verifier-vm/signature/vm-image.ts), with the same check.
 */
import type { VmImageSigner, VmImageVerifier } from '../vm-image.ts';
import { ED25519_SIGNATURE_LEN, ed25519KeyIdHex, signEd25519, verifyEd25519, type Ed25519KeyPair } from './ed25519.ts';

/** A signer with `keyPair` (the VMM's per-VM key). */
export function vmImageSigner(keyPair: Ed25519KeyPair): VmImageSigner {
  return { keyId: ed25519KeyIdHex(keyPair.publicKey), sign: (message) => signEd25519(message, keyPair.secretKey) };
}

/** Checks `signature` over `message` with `publicKey` (whose id is `keyId`, for the message). */
export function checkVmImageSignature(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array, keyId: string): ReturnType<VmImageVerifier> {
  if (signature.length !== ED25519_SIGNATURE_LEN || !verifyEd25519(message, signature, publicKey)) {
    return { kind: 'signature', message: `the signature does not verify with key ${keyId}: the header or signature was modified` };
  }
  return undefined;
}

/** Checks against one trusted public key (a migration source's, named by the operator). */
export function publicKeyVmImageVerifier(publicKey: Uint8Array): VmImageVerifier {
  const trusted = ed25519KeyIdHex(publicKey);
  return (keyId, message, signature) => {
    if (keyId !== trusted) return { kind: 'untrusted-key', message: `signed by key ${keyId}, not by the trusted source key ${trusted}` };
    return checkVmImageSignature(message, signature, publicKey, keyId);
  };
}
