/**
 * Signs a module image with an Ed25519 key in the Linux trailer format (heki-sim's
 * id_type 3): the one function `heki sign`, the demo and the tests share.
 */
import { HASH_ALGO_SHA256, PKEY_ID_HEKI_ED25519, appendModuleSignature, stripModuleSignature } from '../shared/module-signature.ts';
import { type Result, err } from '../shared/result.ts';
import { ed25519KeyId, signModuleEd25519, type Ed25519KeyPair } from '../shared/crypto/ed25519.ts';

/**
 * Returns `file` with any existing signature trailer replaced by an Ed25519 one made with
 * `keyPair`. Errors name the problem (a malformed existing trailer, an empty module).
 */
export function signModuleFile(file: Uint8Array, keyPair: Ed25519KeyPair, signer?: Uint8Array): Result<Uint8Array, string> {
  const elf = stripModuleSignature(file);
  if (!elf.ok) return err(`malformed signature trailer: ${elf.error.message}`);
  if (elf.value.length === 0) return err('empty module');
  return appendModuleSignature(elf.value, {
    idType: PKEY_ID_HEKI_ED25519,
    hash: HASH_ALGO_SHA256,
    keyId: ed25519KeyId(keyPair.publicKey),
    signature: signModuleEd25519(elf.value, keyPair),
    ...(signer !== undefined ? { signer } : {}),
  });
}
