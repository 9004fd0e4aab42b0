/**
 * The verifier's keyring: the public keys and certificates module and kernel signatures are
 * checked against, and the revocation list that overrides them.
 *
 * TRUST: the keyring is built once by the host (the VMM) from host files when the VM starts,
 * and handed to the verifier VM as {@link KeyringData} before the guest runs a single
 * instruction. No hypercall and no verifier protocol message carries keys; the class has no
 * method that adds, removes or replaces a key or a revocation; the instance and its lists are
 * frozen and its maps are private. So the guest, even fully compromised, can never add a key
 * or lift a revocation: the worst it can do is present signatures that fail.
 */
import { ok, err, type Result } from '../shared/result.ts';
import { ED25519_PUBLIC_KEY_LEN, ed25519KeyIdHex } from '../shared/crypto/ed25519.ts';
import { ed25519PublicKeyProblem } from '../shared/crypto/ed25519-public-key.ts';
import { parseTrustedCertificate, type TrustedCertificate } from './signature/x509.ts';
import { isKeyRole, type KeyRole, type KeyringData } from '../shared/keyring-data.ts';

/** A trusted Ed25519 key as the keyring hands it out (a copy; changing it changes nothing). */
export interface TrustedEd25519Key {
  readonly keyId: string;
  readonly role: KeyRole;
  readonly publicKey: Uint8Array;
  readonly source: string | undefined;
}

/** A trusted certificate plus its role. */
export interface KeyringCertificate extends TrustedCertificate {
  readonly role: 'module-signing';
  readonly source: string | undefined;
}

const HEX16 = /^[0-9a-f]{16}$/;
const HEX64 = /^[0-9a-f]{64}$/;

/** Is `v` a key id in canonical form (16 lowercase hex digits)? */
export function isKeyIdHex(v: unknown): v is string {
  return typeof v === 'string' && HEX16.test(v);
}

/** Is `v` a SHA-256 fingerprint in canonical form (64 lowercase hex digits)? */
export function isSha256Hex(v: unknown): v is string {
  return typeof v === 'string' && HEX64.test(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** An immutable keyring. Build it with {@link Keyring.fromData}; see the TRUST note at the top of this file. */
export class Keyring {
  readonly #ed25519: ReadonlyMap<string, TrustedEd25519Key>;
  readonly #certificates: readonly KeyringCertificate[];
  readonly #revokedKeyIds: ReadonlySet<string>;
  readonly #revokedCerts: ReadonlySet<string>;

  private constructor(ed25519: Map<string, TrustedEd25519Key>, certificates: KeyringCertificate[], revokedKeyIds: Set<string>, revokedCerts: Set<string>) {
    this.#ed25519 = ed25519;
    this.#certificates = Object.freeze(certificates);
    this.#revokedKeyIds = revokedKeyIds;
    this.#revokedCerts = revokedCerts;
    Object.freeze(this);
  }

  /** A keyring that trusts nothing: every signature check fails with "unknown key". */
  static empty(): Keyring {
    return new Keyring(new Map(), [], new Set(), new Set());
  }

  /**
   * Validates `data` (of unknown shape: it may come over a worker boundary) and builds the
   * keyring. Errors name the offending entry; never throws. Key ids must match their keys;
   * a key id or certificate may appear once; an Ed25519 key must be a canonical encoding of a
   * curve point of large order (shared/crypto/ed25519-public-key.ts: a small-order key would let anyone sign).
   */
  static fromData(data: unknown): Result<Keyring, string> {
    if (!isRecord(data)) return err('keyring data is not an object');
    const { ed25519, certificates, revoked } = data;
    if (!Array.isArray(ed25519)) return err('keyring data: ed25519 is not an array');
    if (!Array.isArray(certificates)) return err('keyring data: certificates is not an array');
    if (!isRecord(revoked)) return err('keyring data: revoked is not an object');

    const keys = new Map<string, TrustedEd25519Key>();
    for (const [i, k] of ed25519.entries()) {
      const where = `ed25519[${i}]${isRecord(k) && typeof k['source'] === 'string' ? ` (${k['source']})` : ''}`;
      if (!isRecord(k)) return err(`keyring data: ${where} is not an object`);
      const { keyId, role, publicKey, source } = k;
      if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_LEN) {
        return err(`keyring data: ${where}: publicKey must be ${ED25519_PUBLIC_KEY_LEN} bytes`);
      }
      const problem = ed25519PublicKeyProblem(publicKey);
      if (problem !== undefined) return err(`keyring data: ${where}: refused public key ${Buffer.from(publicKey).toString('hex')}: it ${problem}`);
      if (!isKeyRole(role)) return err(`keyring data: ${where}: unknown role ${JSON.stringify(role)}`);
      if (!isKeyIdHex(keyId)) return err(`keyring data: ${where}: keyId must be 16 lowercase hex digits`);
      const actual = ed25519KeyIdHex(publicKey);
      if (actual !== keyId) return err(`keyring data: ${where}: keyId ${keyId} does not match the public key (${actual})`);
      if (keys.has(keyId)) return err(`keyring data: ${where}: duplicate key ${keyId}`);
      if (source !== undefined && typeof source !== 'string') return err(`keyring data: ${where}: source is not a string`);
      keys.set(keyId, Object.freeze({ keyId, role, publicKey: Uint8Array.from(publicKey), source }));
    }

    const certs: KeyringCertificate[] = [];
    const seen = new Set<string>();
    for (const [i, c] of certificates.entries()) {
      const where = `certificates[${i}]${isRecord(c) && typeof c['source'] === 'string' ? ` (${c['source']})` : ''}`;
      if (!isRecord(c)) return err(`keyring data: ${where} is not an object`);
      const { der, role, source } = c;
      if (!(der instanceof Uint8Array)) return err(`keyring data: ${where}: der is not bytes`);
      if (role !== 'module-signing') return err(`keyring data: ${where}: certificates must have role module-signing`);
      if (source !== undefined && typeof source !== 'string') return err(`keyring data: ${where}: source is not a string`);
      const parsed = parseTrustedCertificate(der);
      if (!parsed.ok) return err(`keyring data: ${where}: ${parsed.error}`);
      if (seen.has(parsed.value.sha256)) return err(`keyring data: ${where}: duplicate certificate ${parsed.value.sha256}`);
      seen.add(parsed.value.sha256);
      certs.push(Object.freeze({ ...parsed.value, role, source }));
    }

    const { ed25519KeyIds, x509Sha256 } = revoked;
    if (!Array.isArray(ed25519KeyIds)) return err('keyring data: revoked.ed25519KeyIds is not an array');
    if (!Array.isArray(x509Sha256)) return err('keyring data: revoked.x509Sha256 is not an array');
    const revokedKeyIds = new Set<string>();
    for (const id of ed25519KeyIds) {
      if (!isKeyIdHex(id)) return err(`keyring data: revoked key id ${JSON.stringify(id)} is not 16 lowercase hex digits`);
      revokedKeyIds.add(id);
    }
    const revokedCerts = new Set<string>();
    for (const fp of x509Sha256) {
      if (!isSha256Hex(fp)) return err(`keyring data: revoked fingerprint ${JSON.stringify(fp)} is not 64 lowercase hex digits`);
      revokedCerts.add(fp);
    }
    return ok(new Keyring(keys, certs, revokedKeyIds, revokedCerts));
  }

  /** The Ed25519 key with this id (16 hex), or undefined. Returns a copy of the key bytes. */
  ed25519Key(keyId: string): TrustedEd25519Key | undefined {
    const k = this.#ed25519.get(keyId);
    return k === undefined ? undefined : { ...k, publicKey: Uint8Array.from(k.publicKey) };
  }

  /** All Ed25519 keys (copies), in load order. */
  ed25519Keys(): TrustedEd25519Key[] {
    return [...this.#ed25519.values()].map((k) => ({ ...k, publicKey: Uint8Array.from(k.publicKey) }));
  }

  /** The trusted certificates (a frozen list of frozen entries). */
  certificates(): readonly KeyringCertificate[] {
    return this.#certificates;
  }

  /** Is this Ed25519 key id revoked? */
  isKeyRevoked(keyId: string): boolean {
    return this.#revokedKeyIds.has(keyId);
  }

  /** Is the certificate with this SHA-256 fingerprint (64 hex) revoked? */
  isCertificateRevoked(sha256: string): boolean {
    return this.#revokedCerts.has(sha256);
  }

  /** Counts, for logs and `heki` output. */
  get size(): { ed25519: number; certificates: number; revoked: number } {
    return { ed25519: this.#ed25519.size, certificates: this.#certificates.length, revoked: this.#revokedKeyIds.size + this.#revokedCerts.size };
  }

  /** The keyring as plain data (fresh copies), for posting to a worker; `fromData(toData())` is equivalent. */
  toData(): KeyringData {
    return {
      ed25519: [...this.#ed25519.values()].map((k) => ({
        keyId: k.keyId,
        role: k.role,
        publicKey: Uint8Array.from(k.publicKey),
        ...(k.source !== undefined ? { source: k.source } : {}),
      })),
      certificates: this.#certificates.map((c) => ({
        der: Uint8Array.from(c.der),
        role: c.role,
        ...(c.source !== undefined ? { source: c.source } : {}),
      })),
      revoked: { ed25519KeyIds: [...this.#revokedKeyIds], x509Sha256: [...this.#revokedCerts] },
    };
  }
}
