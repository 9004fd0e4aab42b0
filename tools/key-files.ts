/**
 * The host files a keyring is built from, and the key files `heki keygen` writes. The formats
 * are deliberately small, textual and stable (version them by the `type` string if they ever
 * change):
 *
 * Public key file (`*.pub.json`), one JSON object:
 * ```json
 * {"type":"heki-ed25519-public-key","role":"module-signing","keyId":"<16 hex>","publicKey":"<base64 of 32 bytes>"}
 * ```
 * Secret key file (`*.secret.json`, written with mode 0600), one JSON object:
 * ```json
 * {"type":"heki-ed25519-secret-key","role":"module-signing","keyId":"<16 hex>","seed":"<base64 of 32 bytes>","publicKey":"<base64 of 32 bytes>"}
 * ```
 * `role` is `module-signing`, `kernel-vendor` or `vmm`; `keyId` is SHA-256(publicKey)[0..8) in
 * lowercase hex and must match the key; the secret file's `publicKey` must be the seed's; a
 * public key must be a canonical encoding of a curve point of large order.
 * Unknown extra members are refused, so a typo never silently drops a field.
 *
 * Certificate file: an X.509 certificate in DER (like the kernel's signing_key.x509) or PEM.
 *
 * Revocation file: text, one entry per line, `#` starts a comment, blank lines are ignored:
 * ```
 * ed25519:<16 hex key id>
 * x509-sha256:<64 hex SHA-256 of the certificate's DER>
 * ```
 *
 * Every loader returns a Result whose error names the file and the problem; none throws.
 */
import { writeFileSync, unlinkSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { ok, err, type Result } from '../shared/result.ts';
import { MAX_SMALL_INPUT_BYTES, readHostFile, readHostText } from '../shared/host-file.ts';
import { makeOutputDir } from '../shared/host-output.ts';
import { Keyring } from '../verifier-vm/keyring.ts';
import { isKeyRole, type CertificateData, type Ed25519KeyData, type KeyRole, type KeyringData, type RevocationData } from '../shared/keyring-data.ts';
import { ED25519_PUBLIC_KEY_LEN, ED25519_SEED_LEN, ed25519KeyIdHex, ed25519KeyPairFromSeed, type Ed25519KeyPair } from '../shared/crypto/ed25519.ts';
import { parseTrustedCertificate } from '../verifier-vm/signature/x509.ts';
import { ed25519PublicKeyProblem } from '../shared/crypto/ed25519-public-key.ts';

/** The `type` of a public key file. */
export const PUBLIC_KEY_FILE_TYPE = 'heki-ed25519-public-key';
/** The `type` of a secret key file. */
export const SECRET_KEY_FILE_TYPE = 'heki-ed25519-secret-key';

/** A secret key as loaded from its file. */
export interface SecretKeyMaterial {
  readonly role: KeyRole;
  readonly keyId: string;
  readonly keyPair: Ed25519KeyPair;
}

function errorText(e: unknown): string {
  if (e instanceof Error) {
    const code = (e as NodeJS.ErrnoException).code;
    return code !== undefined ? `${code}: ${e.message}` : e.message;
  }
  return String(e);
}

/** Strict base64: the text must be the canonical encoding of exactly `len` bytes. */
function decodeBase64(value: unknown, len: number): Uint8Array | undefined {
  if (typeof value !== 'string') return undefined;
  const bytes = Buffer.from(value, 'base64');
  if (bytes.length !== len || bytes.toString('base64') !== value) return undefined;
  return new Uint8Array(bytes);
}

function parseJsonObject(text: string, source: string): Result<Record<string, unknown>, string> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    return err(`${source}: not valid JSON (${errorText(e)})`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return err(`${source}: not a JSON object`);
  return ok(v as Record<string, unknown>);
}

function checkMembers(obj: Record<string, unknown>, allowed: readonly string[], source: string): string | undefined {
  const extra = Object.keys(obj).filter((k) => !allowed.includes(k));
  return extra.length > 0 ? `${source}: unexpected member ${JSON.stringify(extra[0])}` : undefined;
}

/** Parses the text of a public key file. `source` (a path) prefixes every error. */
export function parsePublicKeyFile(text: string, source: string): Result<Ed25519KeyData, string> {
  const parsed = parseJsonObject(text, source);
  if (!parsed.ok) return parsed;
  const o = parsed.value;
  if (o['type'] !== PUBLIC_KEY_FILE_TYPE) {
    return err(`${source}: type must be "${PUBLIC_KEY_FILE_TYPE}", got ${JSON.stringify(o['type'])}`);
  }
  const extra = checkMembers(o, ['type', 'role', 'keyId', 'publicKey'], source);
  if (extra !== undefined) return err(extra);
  if (!isKeyRole(o['role'])) return err(`${source}: role must be module-signing, kernel-vendor or vmm, got ${JSON.stringify(o['role'])}`);
  const publicKey = decodeBase64(o['publicKey'], ED25519_PUBLIC_KEY_LEN);
  if (publicKey === undefined) return err(`${source}: publicKey must be base64 of ${ED25519_PUBLIC_KEY_LEN} bytes`);
  // TRUST: a key file is the host's, but a refused key (small order: anyone could sign) is
  // stopped here, naming the file, before it reaches a keyring or a trusted-source check.
  const problem = ed25519PublicKeyProblem(publicKey);
  if (problem !== undefined) return err(`${source}: refused public key ${Buffer.from(publicKey).toString('hex')}: it ${problem}`);
  const keyId = ed25519KeyIdHex(publicKey);
  if (o['keyId'] !== keyId) return err(`${source}: keyId ${JSON.stringify(o['keyId'])} does not match the public key (${keyId})`);
  return ok({ keyId, role: o['role'], publicKey, source });
}

/** Parses the text of a secret key file. `source` (a path) prefixes every error. */
export function parseSecretKeyFile(text: string, source: string): Result<SecretKeyMaterial, string> {
  const parsed = parseJsonObject(text, source);
  if (!parsed.ok) return parsed;
  const o = parsed.value;
  if (o['type'] !== SECRET_KEY_FILE_TYPE) {
    return err(`${source}: type must be "${SECRET_KEY_FILE_TYPE}", got ${JSON.stringify(o['type'])}`);
  }
  const extra = checkMembers(o, ['type', 'role', 'keyId', 'seed', 'publicKey'], source);
  if (extra !== undefined) return err(extra);
  if (!isKeyRole(o['role'])) return err(`${source}: role must be module-signing, kernel-vendor or vmm, got ${JSON.stringify(o['role'])}`);
  const seed = decodeBase64(o['seed'], ED25519_SEED_LEN);
  if (seed === undefined) return err(`${source}: seed must be base64 of ${ED25519_SEED_LEN} bytes`);
  const publicKey = decodeBase64(o['publicKey'], ED25519_PUBLIC_KEY_LEN);
  if (publicKey === undefined) return err(`${source}: publicKey must be base64 of ${ED25519_PUBLIC_KEY_LEN} bytes`);
  const keyPair = ed25519KeyPairFromSeed(seed);
  if (!Buffer.from(keyPair.publicKey).equals(publicKey)) return err(`${source}: publicKey is not the public key of seed`);
  const keyId = ed25519KeyIdHex(publicKey);
  if (o['keyId'] !== keyId) return err(`${source}: keyId ${JSON.stringify(o['keyId'])} does not match the public key (${keyId})`);
  return ok({ role: o['role'], keyId, keyPair });
}

/** The text of a public key file (one JSON line). */
export function formatPublicKeyFile(publicKey: Uint8Array, role: KeyRole): string {
  return (
    JSON.stringify({
      type: PUBLIC_KEY_FILE_TYPE,
      role,
      keyId: ed25519KeyIdHex(publicKey),
      publicKey: Buffer.from(publicKey).toString('base64'),
    }) + '\n'
  );
}

/** The text of a secret key file (one JSON line). */
export function formatSecretKeyFile(keyPair: Ed25519KeyPair, role: KeyRole): string {
  return (
    JSON.stringify({
      type: SECRET_KEY_FILE_TYPE,
      role,
      keyId: ed25519KeyIdHex(keyPair.publicKey),
      seed: Buffer.from(keyPair.seed).toString('base64'),
      publicKey: Buffer.from(keyPair.publicKey).toString('base64'),
    }) + '\n'
  );
}

/** Parses the text of a revocation file. `source` (a path) prefixes every error, with the line number. */
export function parseRevocationList(text: string, source: string): Result<RevocationData, string> {
  const ed25519KeyIds: string[] = [];
  const x509Sha256: string[] = [];
  const lines = text.split('\n');
  for (const [i, rawLine] of lines.entries()) {
    const hash = rawLine.indexOf('#');
    const line = (hash >= 0 ? rawLine.slice(0, hash) : rawLine).trim();
    if (line === '') continue;
    const where = `${source}:${i + 1}`;
    const m = /^(ed25519|x509-sha256):(\S+)$/.exec(line);
    if (m === null) return err(`${where}: expected "ed25519:<16 hex>" or "x509-sha256:<64 hex>", got ${JSON.stringify(line)}`);
    const value = m[2]!.toLowerCase();
    if (m[1] === 'ed25519') {
      if (!/^[0-9a-f]{16}$/.test(value)) return err(`${where}: Ed25519 key id must be 16 hex digits, got ${JSON.stringify(m[2])}`);
      ed25519KeyIds.push(value);
    } else {
      if (!/^[0-9a-f]{64}$/.test(value)) return err(`${where}: certificate fingerprint must be 64 hex digits, got ${JSON.stringify(m[2])}`);
      x509Sha256.push(value);
    }
  }
  return ok({ ed25519KeyIds, x509Sha256 });
}

/** A key, certificate or revocation file is a few hundred bytes; 1 MiB bounds a long revocation list. */
function readText(path: string): Result<string, string> {
  return readHostText(path, { maxBytes: MAX_SMALL_INPUT_BYTES });
}

/** Loads a public key file. */
export function loadPublicKeyFile(path: string): Result<Ed25519KeyData, string> {
  const text = readText(path);
  return text.ok ? parsePublicKeyFile(text.value, path) : text;
}

/** Loads a secret key file. */
export function loadSecretKeyFile(path: string): Result<SecretKeyMaterial, string> {
  const text = readText(path);
  return text.ok ? parseSecretKeyFile(text.value, path) : text;
}

/** Loads a certificate file (DER or PEM), checking that it parses. */
export function loadCertificateFile(path: string): Result<CertificateData, string> {
  const der = readHostFile(path, { maxBytes: MAX_SMALL_INPUT_BYTES });
  if (!der.ok) return der;
  const parsed = parseTrustedCertificate(der.value);
  if (!parsed.ok) return err(`${path}: ${parsed.error}`);
  return ok({ der: parsed.value.der, role: 'module-signing', source: path });
}

/** Loads a revocation file. */
export function loadRevocationFile(path: string): Result<RevocationData, string> {
  const text = readText(path);
  return text.ok ? parseRevocationList(text.value, path) : text;
}

/** The host files a keyring is built from (paths). */
export interface KeyringFiles {
  readonly pubkeys?: readonly string[];
  readonly certs?: readonly string[];
  readonly revoked?: readonly string[];
}

/** Loads every file into {@link KeyringData}, ready to post to the verifier worker. */
export function keyringDataFromFiles(files: KeyringFiles): Result<KeyringData, string> {
  const ed25519: Ed25519KeyData[] = [];
  const certificates: CertificateData[] = [];
  const ed25519KeyIds: string[] = [];
  const x509Sha256: string[] = [];
  for (const p of files.pubkeys ?? []) {
    const k = loadPublicKeyFile(p);
    if (!k.ok) return k;
    ed25519.push(k.value);
  }
  for (const p of files.certs ?? []) {
    const c = loadCertificateFile(p);
    if (!c.ok) return c;
    certificates.push(c.value);
  }
  for (const p of files.revoked ?? []) {
    const r = loadRevocationFile(p);
    if (!r.ok) return r;
    ed25519KeyIds.push(...r.value.ed25519KeyIds);
    x509Sha256.push(...r.value.x509Sha256);
  }
  return ok({ ed25519, certificates, revoked: { ed25519KeyIds, x509Sha256 } });
}

/** Loads every file and builds the immutable {@link Keyring}. Errors name the file and the problem. */
export function keyringFromFiles(files: KeyringFiles): Result<Keyring, string> {
  const data = keyringDataFromFiles(files);
  return data.ok ? Keyring.fromData(data.value) : data;
}

/** Where {@link writeKeyPairFiles} put a key pair. */
export interface WrittenKeyPair {
  readonly keyId: string;
  readonly secretPath: string;
  readonly publicPath: string;
}

/**
 * Writes `<dir>/<name>.secret.json` (mode 0600, created fresh) and `<dir>/<name>.pub.json`,
 * creating `dir` if needed. Refuses to overwrite existing files unless `force`.
 */
export function writeKeyPairFiles(
  dir: string,
  name: string,
  keyPair: Ed25519KeyPair,
  role: KeyRole,
  options: { force?: boolean } = {},
): Result<WrittenKeyPair, string> {
  const secretPath = join(dir, `${name}.secret.json`);
  const publicPath = join(dir, `${name}.pub.json`);
  const made = makeOutputDir(dir);
  if (!made.ok) return made;
  for (const p of [secretPath, publicPath]) {
    if (!existsSync(p)) continue;
    if (!options.force) return err(`${p}: already exists (remove it, or pass --force)`);
    try {
      // Unlink first so the secret file is created anew with mode 0600, whatever the old one had.
      unlinkSync(p);
    } catch (e) {
      return err(`${p}: cannot replace (${errorText(e)})`);
    }
  }
  try {
    writeFileSync(secretPath, formatSecretKeyFile(keyPair, role), { mode: 0o600, flag: 'wx' });
  } catch (e) {
    return err(`${secretPath}: cannot write (${errorText(e)})`);
  }
  try {
    writeFileSync(publicPath, formatPublicKeyFile(keyPair.publicKey, role), { mode: 0o644, flag: 'wx' });
  } catch (e) {
    return err(`${publicPath}: cannot write (${errorText(e)})`);
  }
  return ok({ keyId: ed25519KeyIdHex(keyPair.publicKey), secretPath, publicPath });
}
