/**
 * The keyring as plain data: what the VMM builds from host files (tools/key-files.ts) and
 * posts to the verifier worker in its init (shared/worker-api.ts), and what the verifier's
 * keyring (verifier-vm/keyring.ts) validates before it trusts a single key. Part of the
 * worker's wire contract, so both sides name the same shapes.
 */

/**
 * What a key may sign. `kernel-vendor` keys sign the kernel manifest; `module-signing` keys
 * sign loadable modules; `vmm` keys are a VMM's per-VM keys, which sign VM state images
 * (hibernation images, migration snapshots: shared/vm-image.ts). A key only counts for its
 * own role.
 */
export type KeyRole = 'kernel-vendor' | 'module-signing' | 'vmm';

/** The roles, for validation and usage texts. */
export const KEY_ROLES: readonly KeyRole[] = Object.freeze(['kernel-vendor', 'module-signing', 'vmm'] as const);

/** Is `v` a {@link KeyRole}? */
export function isKeyRole(v: unknown): v is KeyRole {
  return v === 'kernel-vendor' || v === 'module-signing' || v === 'vmm';
}

/** An Ed25519 public key of the keyring. */
export interface Ed25519KeyData {
  /** 16 lowercase hex digits: SHA-256(publicKey)[0..8). */
  readonly keyId: string;
  readonly role: KeyRole;
  /** The raw 32-byte public key. */
  readonly publicKey: Uint8Array;
  /** Where it came from (a file name), for messages. Optional. */
  readonly source?: string;
}

/** An X.509 certificate of the keyring (PKCS#7 module signatures); always role `module-signing`. */
export interface CertificateData {
  /** DER (or PEM) bytes. */
  readonly der: Uint8Array;
  readonly role: 'module-signing';
  readonly source?: string;
}

/** Revocations: a revoked key or certificate is refused even if the keyring holds it. */
export interface RevocationData {
  /** Revoked Ed25519 key ids, 16 lowercase hex digits each. */
  readonly ed25519KeyIds: readonly string[];
  /** Revoked certificates by SHA-256 of their DER, 64 lowercase hex digits each. */
  readonly x509Sha256: readonly string[];
}

/**
 * The keyring as plain data (bytes, strings, arrays): what the VMM posts to the verifier
 * worker (structured clone keeps Uint8Arrays) and what {@link Keyring.fromData} validates.
 */
export interface KeyringData {
  readonly ed25519: readonly Ed25519KeyData[];
  readonly certificates: readonly CertificateData[];
  readonly revoked: RevocationData;
}
