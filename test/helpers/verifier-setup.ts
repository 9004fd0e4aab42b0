/**
 * Keys and a keyring for tests that start the verifier VM, plus a signed dummy module.
 */
import { generateEd25519KeyPair, ed25519KeyIdHex, type Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { signModuleFile } from '../../tools/sign-module.ts';
import type { KeyringData } from '../../shared/keyring-data.ts';

/** A module-signing key pair and a keyring that trusts it. */
export function testKeyring(): { keyPair: Ed25519KeyPair; vendor: Ed25519KeyPair; data: KeyringData } {
  const keyPair = generateEd25519KeyPair();
  const vendor = generateEd25519KeyPair();
  return {
    keyPair,
    vendor,
    data: {
      ed25519: [
        { keyId: ed25519KeyIdHex(keyPair.publicKey), role: 'module-signing', publicKey: keyPair.publicKey },
        { keyId: ed25519KeyIdHex(vendor.publicKey), role: 'kernel-vendor', publicKey: vendor.publicKey },
      ],
      certificates: [],
      revoked: { ed25519KeyIds: [], x509Sha256: [] },
    },
  };
}

/** Bytes that stand for a module image, Ed25519-signed with `keyPair`. */
export function signedBlob(keyPair: Ed25519KeyPair, content = 'not really an ELF'): Uint8Array {
  const r = signModuleFile(new TextEncoder().encode(content), keyPair);
  if (!r.ok) throw new Error(r.error);
  return r.value;
}
