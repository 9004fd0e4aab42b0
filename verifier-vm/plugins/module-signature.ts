/**
 * module-signature and module-pkcs7: authenticate a module image by its signature trailer.
 * module-signature decides Ed25519 trailers (heki-sim's id_type 3) and module-pkcs7 decides
 * PKCS#7 ones (Debian's real signatures); each abstains on the other's scheme and both deny an
 * unsigned or malformed image. The accepting plugin publishes {@link SIGNATURE_FACT}.
 *
 * Config of module-signature: `{ ed25519?: 'node' | 'tweetnacl' }`, the Ed25519
 * implementation (default `node`, node:crypto; `tweetnacl` is the pure-JS reference, about 50
 * times slower, bench/module-auth.ts). Both accept and refuse the same signatures.
 */
import { parseModuleSignature, PKEY_ID_HEKI_ED25519, PKEY_ID_PKCS7 } from '../../shared/module-signature.ts';
import type { PluginResult, VerifierPlugin } from '../plugin-api.ts';
import { verifyModuleSignature } from '../signature/verify-module.ts';
import { SIGNATURE_FACT, type SignatureFact } from './module-signature-fact.ts';

function signaturePlugin(name: string, idType: number, scheme: 'ed25519' | 'pkcs7', description: string): VerifierPlugin<'module-load'> {
  return {
    name,
    description,
    kinds: ['module-load'],
    decide(request, ctx): PluginResult {
      const parsed = parseModuleSignature(request.image);
      if (!parsed.ok) {
        return {
          decision: 'deny',
          reason: parsed.error.kind === 'unsigned' ? `module ${request.name} is not signed` : `module ${request.name}: ${parsed.error.message}`,
        };
      }
      if (parsed.value.idType !== idType) {
        // Another plugin's scheme; an unknown scheme is refused by both (neither allows).
        return { decision: 'abstain', reason: `not a ${scheme} signature` };
      }
      const impl = ctx.config['ed25519'];
      if (impl !== undefined && impl !== 'node' && impl !== 'tweetnacl')
        return { decision: 'deny', reason: `invalid ${name} configuration: ed25519 must be "node" or "tweetnacl"` };
      const v = verifyModuleSignature(request.image, ctx.keyring, impl === undefined ? {} : { ed25519: impl });
      if (!v.accepted || !v.elf) return { decision: 'deny', reason: `module ${request.name}: ${v.reason}` };
      const fact: SignatureFact = { scheme, keyId: v.keyId ?? '', elf: v.elf };
      ctx.facts.set(SIGNATURE_FACT, fact);
      return { decision: 'allow', reason: `module ${request.name} ${v.reason}` };
    },
  };
}

/** Ed25519 module signatures. */
export const moduleSignaturePlugin = signaturePlugin(
  'module-signature',
  PKEY_ID_HEKI_ED25519,
  'ed25519',
  'accepts a module whose Ed25519 signature trailer verifies with a module-signing key that is not revoked',
);

/** PKCS#7 module signatures (Linux's format). */
export const modulePkcs7Plugin = signaturePlugin(
  'module-pkcs7',
  PKEY_ID_PKCS7,
  'pkcs7',
  "accepts a module whose PKCS#7 signature verifies against a trusted X.509 certificate (Linux's sign-file format)",
);
