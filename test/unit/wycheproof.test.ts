/**
 * The verifier's signature primitives held to Project Wycheproof (../shared/vectors/wycheproof,
 * unmodified copies, checked against their SHA256SUMS): every Ed25519 vector on both the
 * node:crypto and the tweetnacl path, and every RSASSA-PKCS1-v1_5 vector (2048-4096 bits,
 * SHA-256/384/512) on verifier-vm/signature/rsa.ts, the RSA check of PKCS#7 module signatures.
 * `valid` must verify and `invalid` must not; the one `acceptable` kind is decided below.
 */
import test from 'ava';
import { createHash, createPublicKey } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';
import { ed25519PublicKeyProblem } from '../../shared/crypto/ed25519-public-key.ts';
import { verifyEd25519Nacl, verifyEd25519Node } from '../../shared/crypto/ed25519.ts';
import { verifyRsaPkcs1v15, type RsaDigest } from '../../verifier-vm/signature/rsa.ts';
import { unlessMissing } from '../helpers/fixtures.ts';

const dir = join(repoRoot(), '..', 'shared', 'vectors', 'wycheproof');
const vectorTest = unlessMissing(test, existsSync(join(dir, 'SHA256SUMS')) ? undefined : `Wycheproof vectors not found at ${dir}`);

interface Vector {
  readonly tcId: number;
  readonly comment: string;
  readonly flags: readonly string[];
  readonly msg: string;
  readonly sig: string;
  readonly result: 'valid' | 'invalid' | 'acceptable';
}
interface VectorFile<G> {
  readonly numberOfTests: number;
  readonly testGroups: readonly (G & { readonly tests: readonly Vector[] })[];
}

/** Reads a vector file after checking it against SHA256SUMS. */
function load<G>(name: string): VectorFile<G> {
  const sums = readFileSync(join(dir, 'SHA256SUMS'), 'utf8');
  const bytes = readFileSync(join(dir, name));
  const want = new RegExp(`^([0-9a-f]{64})  ${name.replace(/[.]/g, '\\.')}$`, 'm').exec(sums)?.[1];
  const got = createHash('sha256').update(bytes).digest('hex');
  if (want !== got) throw new Error(`${name}: SHA-256 ${got} is not the one SHA256SUMS lists (${want ?? 'none'})`);
  return JSON.parse(bytes.toString('utf8')) as VectorFile<G>;
}

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const count = (f: VectorFile<unknown>): number => f.testGroups.reduce((n, g) => n + g.tests.length, 0);

vectorTest('Wycheproof Ed25519: all 151 vectors agree on node:crypto and tweetnacl; no group key is refused', (t) => {
  const f = load<{ publicKey: { pk: string } }>('ed25519_test.json');
  t.is(count(f), f.numberOfTests);
  t.is(count(f), 151);
  const disagree: string[] = [];
  for (const g of f.testGroups) {
    const pk = hex(g.publicKey.pk);
    // Every Wycheproof key is an honest key: the keyring's checks must not refuse it.
    t.is(ed25519PublicKeyProblem(pk), undefined, g.publicKey.pk);
    for (const v of g.tests) {
      t.not(v.result, 'acceptable', `tcId ${v.tcId}: no acceptable Ed25519 vectors in this file`);
      const want = v.result === 'valid';
      for (const [impl, verify] of [
        ['node', verifyEd25519Node],
        ['tweetnacl', verifyEd25519Nacl],
      ] as const) {
        if (verify(hex(v.msg), hex(v.sig), pk) !== want) disagree.push(`${impl} tcId ${v.tcId} (${v.comment || v.flags.join(',')}): expected ${v.result}`);
      }
    }
  }
  t.deepEqual(disagree, []);
});

const RSA_FILES = [
  'rsa_signature_2048_sha256_test.json',
  'rsa_signature_2048_sha384_test.json',
  'rsa_signature_3072_sha256_test.json',
  'rsa_signature_4096_sha256_test.json',
  'rsa_signature_4096_sha512_test.json',
];
const HASHES: Readonly<Record<string, RsaDigest>> = { 'SHA-256': 'sha256', 'SHA-384': 'sha384', 'SHA-512': 'sha512' };

for (const name of RSA_FILES) {
  // `acceptable` here is only MissingNull: a DigestInfo whose AlgorithmIdentifier omits the NULL
  // parameters. RFC 8017 lets a verifier take it; the kernel does not (crypto/rsa-pkcs1pad.c
  // compares the DigestInfo prefix, NULL included, byte for byte), so neither do we.
  vectorTest(`Wycheproof RSASSA-PKCS1-v1_5 ${name}: valid verify, invalid and MissingNull are refused`, (t) => {
    const f = load<{ publicKeyDer: string; sha: string }>(name);
    t.is(count(f), f.numberOfTests);
    const disagree: string[] = [];
    let acceptable = 0;
    for (const g of f.testGroups) {
      const key = createPublicKey({ key: Buffer.from(g.publicKeyDer, 'hex'), format: 'der', type: 'spki' });
      const hash = HASHES[g.sha];
      if (hash === undefined) throw new Error(`${name}: unexpected hash ${g.sha}`);
      for (const v of g.tests) {
        if (v.result === 'acceptable') {
          t.deepEqual(v.flags, ['MissingNull'], `tcId ${v.tcId}`);
          acceptable++;
        }
        if (verifyRsaPkcs1v15(hash, hex(v.msg), key, hex(v.sig)) !== (v.result === 'valid'))
          disagree.push(`tcId ${v.tcId} (${v.comment || v.flags.join(',')}): expected ${v.result}`);
      }
    }
    t.deepEqual(disagree, []);
    t.is(acceptable, 1);
  });
}
