/**
 * The verifier's check of VM state images (shared/vm-image.ts): signed by a `vmm` key of its
 * keyring that is not revoked, with the scheme of shared/crypto/vm-image-signature.ts.
 */
import type { VmImageVerifier } from '../../shared/vm-image.ts';
import type { Keyring } from '../keyring.ts';
import { checkVmImageSignature } from '../../shared/crypto/vm-image-signature.ts';

/** Checks against the keyring's `vmm` keys that are not revoked. */
export function keyringVmImageVerifier(keyring: Keyring): VmImageVerifier {
  return (keyId, message, signature) => {
    const key = keyring.ed25519Key(keyId);
    if (!key) return { kind: 'untrusted-key', message: `signed by key ${keyId}, which the keyring does not hold` };
    if (key.role !== 'vmm') return { kind: 'untrusted-key', message: `key ${keyId} has role ${key.role}, not vmm` };
    if (keyring.isKeyRevoked(keyId)) return { kind: 'untrusted-key', message: `key ${keyId} is revoked` };
    return checkVmImageSignature(message, signature, key.publicKey, keyId);
  };
}
