/**
 * The fact the signature plugins publish for later plugins (module-end-state): which scheme
 * and key authenticated the module image, and the ELF the signature covers.
 */

/** Fact key. */
export const SIGNATURE_FACT = 'module.signature';

/** Fact value. */
export interface SignatureFact {
  readonly scheme: 'ed25519' | 'pkcs7';
  readonly keyId: string;
  /** The ELF bytes the signature covers (the image without its trailer). */
  readonly elf: Uint8Array;
}
