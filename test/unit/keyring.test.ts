/**
 * The verifier keyring (verifier-vm/keyring.ts), its host files (tools/key-files.ts)
 * and the module signature verdict (verifier-vm/signature/verify-module.ts).
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HASH_ALGO_SHA256, PKEY_ID_HEKI_ED25519, PKEY_ID_X509, appendModuleSignature } from '../../shared/module-signature.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { type KeyringData, type KeyRole } from '../../shared/keyring-data.ts';
import {
  formatPublicKeyFile,
  formatSecretKeyFile,
  keyringDataFromFiles,
  keyringFromFiles,
  parsePublicKeyFile,
  parseRevocationList,
  parseSecretKeyFile,
  writeKeyPairFiles,
} from '../../tools/key-files.ts';
import { ed25519KeyId, ed25519KeyIdHex, generateEd25519KeyPair, signModuleEd25519, type Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { verifyModuleSignature } from '../../verifier-vm/signature/verify-module.ts';
import { fixtures, needsFixtures, readFixtureModule } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);
const elf = new Uint8Array(10_000).map((_, i) => (i * 31) & 0xff);

function keyring(data: Partial<KeyringData>): Keyring {
  const r = Keyring.fromData({ ed25519: [], certificates: [], revoked: { ed25519KeyIds: [], x509Sha256: [] }, ...data });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

function entry(kp: Ed25519KeyPair, role: KeyRole = 'module-signing') {
  return { keyId: ed25519KeyIdHex(kp.publicKey), role, publicKey: kp.publicKey };
}

function signed(e: Uint8Array, kp: Ed25519KeyPair): Uint8Array {
  const r = appendModuleSignature(e, {
    idType: PKEY_ID_HEKI_ED25519,
    hash: HASH_ALGO_SHA256,
    keyId: ed25519KeyId(kp.publicKey),
    signature: signModuleEd25519(e, kp),
  });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

test('verdict: a module signed by a module-signing key is accepted, naming the key; elf is the image', (t) => {
  const kp = generateEd25519KeyPair();
  const id = ed25519KeyIdHex(kp.publicKey);
  const v = verifyModuleSignature(signed(elf, kp), keyring({ ed25519: [{ ...entry(kp), source: 'vendor.pub.json' }] }));
  t.true(v.accepted);
  t.is(v.scheme, 'ed25519');
  t.is(v.keyId, id);
  t.regex(v.reason, new RegExp(`signed by module-signing key ${id} \\(vendor.pub.json\\)`));
  t.deepEqual(v.elf, elf);
  // Both Ed25519 implementations give the same verdict.
  t.true(verifyModuleSignature(signed(elf, kp), keyring({ ed25519: [entry(kp)] }), { ed25519: 'tweetnacl' }).accepted);
});

test('verdict: unsigned, unknown key, revoked key, wrong role, flipped byte, unsupported type', (t) => {
  const kp = generateEd25519KeyPair();
  const other = generateEd25519KeyPair();
  const id = ed25519KeyIdHex(kp.publicKey);
  const ring = keyring({ ed25519: [entry(kp)] });

  const unsigned = verifyModuleSignature(elf, ring);
  t.deepEqual(unsigned, { accepted: false, scheme: 'none', reason: 'module is not signed' });

  const unknown = verifyModuleSignature(signed(elf, other), ring);
  t.false(unknown.accepted);
  t.is(unknown.scheme, 'ed25519');
  t.regex(unknown.reason, new RegExp(`unknown key ${ed25519KeyIdHex(other.publicKey)}`));

  const revoked = verifyModuleSignature(signed(elf, kp), keyring({ ed25519: [entry(kp)], revoked: { ed25519KeyIds: [id], x509Sha256: [] } }));
  t.false(revoked.accepted);
  t.regex(revoked.reason, new RegExp(`key ${id} is revoked`));

  const vendor = verifyModuleSignature(signed(elf, kp), keyring({ ed25519: [entry(kp, 'kernel-vendor')] }));
  t.false(vendor.accepted);
  t.regex(vendor.reason, /role kernel-vendor, not module-signing/);

  const file = signed(elf, kp);
  file[100]! ^= 0x04;
  const flipped = verifyModuleSignature(file, ring);
  t.false(flipped.accepted);
  t.regex(flipped.reason, /signature mismatch/);

  const sigFlip = signed(elf, kp);
  sigFlip[sigFlip.length - 28 - 12 - 5]! ^= 0x01;
  t.regex(verifyModuleSignature(sigFlip, ring).reason, /signature mismatch/);

  const x509 = appendModuleSignature(elf, { idType: PKEY_ID_X509, signature: new Uint8Array(10) });
  if (!x509.ok) throw new Error(x509.error);
  const unsupported = verifyModuleSignature(x509.value, ring);
  t.false(unsupported.accepted);
  t.regex(unsupported.reason, /unsupported signature type PKEY_ID_X509/);

  const malformed = Uint8Array.from([...new Uint8Array(5), ...new TextEncoder().encode('~Module signature appended~\n')]);
  t.regex(verifyModuleSignature(malformed, ring).reason, /^malformed signature trailer: truncated/);
  t.regex(verifyModuleSignature('not bytes' as unknown as Uint8Array, ring).reason, /not a byte array/);
});

test('the keyring is frozen and has no way to add or remove keys; handed-out keys are copies', (t) => {
  const kp = generateEd25519KeyPair();
  const ring = keyring({ ed25519: [entry(kp)] });
  t.true(Object.isFrozen(ring));
  const proto = Object.getOwnPropertyNames(Keyring.prototype);
  for (const name of proto) t.notRegex(name, /^(add|remove|delete|set|insert|revoke|unrevoke|clear)/i, name);
  t.throws(() => {
    (ring as unknown as Record<string, unknown>)['extra'] = 1;
  });
  const got = ring.ed25519Key(ed25519KeyIdHex(kp.publicKey));
  t.truthy(got);
  got!.publicKey.fill(0);
  // The keyring still verifies with the real key.
  t.true(verifyModuleSignature(signed(elf, kp), ring).accepted);
  t.true(Object.isFrozen(ring.certificates()));
});

test('fromData validates everything and names the offending entry', (t) => {
  const kp = generateEd25519KeyPair();
  const id = ed25519KeyIdHex(kp.publicKey);
  const base = { ed25519: [], certificates: [], revoked: { ed25519KeyIds: [], x509Sha256: [] } };
  const cases: [unknown, RegExp][] = [
    [null, /not an object/],
    [{ ...base, ed25519: 'x' }, /ed25519 is not an array/],
    [{ ...base, ed25519: [{ keyId: id, role: 'module-signing', publicKey: new Uint8Array(31) }] }, /ed25519\[0\]: publicKey must be 32 bytes/],
    [{ ...base, ed25519: [{ keyId: id, role: 'root', publicKey: kp.publicKey }] }, /unknown role "root"/],
    [{ ...base, ed25519: [{ keyId: '0000000000000000', role: 'module-signing', publicKey: kp.publicKey }] }, /does not match the public key/],
    [{ ...base, ed25519: [entry(kp), entry(kp)] }, /ed25519\[1\]: duplicate key/],
    [
      { ...base, certificates: [{ der: new Uint8Array(10), role: 'module-signing', source: 'bad.der' }] },
      /certificates\[0\] \(bad.der\): not an X.509 certificate/,
    ],
    [{ ...base, revoked: { ed25519KeyIds: ['XYZ'], x509Sha256: [] } }, /revoked key id "XYZ"/],
    [{ ...base, revoked: { ed25519KeyIds: [], x509Sha256: ['00'] } }, /revoked fingerprint "00"/],
  ];
  for (const [data, re] of cases) {
    const r = Keyring.fromData(data);
    t.false(r.ok);
    if (!r.ok) t.regex(r.error, re);
  }
});

fixtureTest('toData round-trips through structured clone (the worker boundary)', (t) => {
  const kp = generateEd25519KeyPair();
  const der = new Uint8Array(readFileSync(fixtures.signingKeyDer));
  const ring = keyring({
    ed25519: [entry(kp)],
    certificates: [{ der, role: 'module-signing' }],
    revoked: { ed25519KeyIds: ['0123456789abcdef'], x509Sha256: [] },
  });
  const clone = structuredClone(ring.toData());
  const back = Keyring.fromData(clone);
  t.true(back.ok);
  if (!back.ok) return;
  t.deepEqual(back.value.size, { ed25519: 1, certificates: 1, revoked: 1 });
  t.true(back.value.isKeyRevoked('0123456789abcdef'));
  t.true(verifyModuleSignature(signed(elf, kp), back.value).accepted);
  t.true(verifyModuleSignature(readFixtureModule('crc7'), back.value).accepted);
});

test('key files: write, load, and every malformed field named with the file', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-keys-'));
  try {
    const kp = generateEd25519KeyPair();
    const w = writeKeyPairFiles(dir, 'k', kp, 'module-signing');
    t.true(w.ok);
    if (!w.ok) return;
    t.is(statSync(w.value.secretPath).mode & 0o777, 0o600);
    t.false(writeKeyPairFiles(dir, 'k', kp, 'module-signing').ok, 'no silent overwrite');
    t.true(writeKeyPairFiles(dir, 'k', kp, 'module-signing', { force: true }).ok);

    const pub = JSON.parse(readFileSync(w.value.publicPath, 'utf8')) as Record<string, unknown>;
    t.deepEqual(Object.keys(pub), ['type', 'role', 'keyId', 'publicKey']);
    t.is(pub['type'], 'heki-ed25519-public-key');
    t.is(pub['keyId'], ed25519KeyIdHex(kp.publicKey));
    const sec = parseSecretKeyFile(readFileSync(w.value.secretPath, 'utf8'), 's');
    t.true(sec.ok);
    if (sec.ok) t.deepEqual(sec.value.keyPair.publicKey, kp.publicKey);

    const good = JSON.parse(formatPublicKeyFile(kp.publicKey, 'module-signing')) as Record<string, unknown>;
    const bad = (o: Record<string, unknown>): string => {
      const r = parsePublicKeyFile(JSON.stringify(o), 'p.json');
      return r.ok ? 'ok' : r.error;
    };
    t.regex(bad({ ...good, type: 'x' }), /^p.json: type must be/);
    t.regex(bad({ ...good, role: 'admin' }), /^p.json: role must be/);
    t.regex(bad({ ...good, publicKey: 'AAAA' }), /^p.json: publicKey must be base64 of 32 bytes/);
    t.regex(bad({ ...good, keyId: '0000000000000000' }), /^p.json: keyId "0000000000000000" does not match/);
    t.regex(bad({ ...good, extra: 1 }), /^p.json: unexpected member "extra"/);
    const notJson = parsePublicKeyFile('{', 'p.json');
    t.regex(notJson.ok ? '' : notJson.error, /^p.json: not valid JSON/);

    const secGood = JSON.parse(formatSecretKeyFile(kp, 'kernel-vendor')) as Record<string, unknown>;
    const other = generateEd25519KeyPair();
    const mismatch = parseSecretKeyFile(JSON.stringify({ ...secGood, publicKey: Buffer.from(other.publicKey).toString('base64') }), 's.json');
    t.regex(mismatch.ok ? '' : mismatch.error, /^s.json: publicKey is not the public key of seed/);

    const missing = keyringFromFiles({ pubkeys: [join(dir, 'nope.pub.json')] });
    t.regex(missing.ok ? '' : missing.error, /nope\.pub\.json: cannot read: no such file/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('revocation lists: entries, comments, and bad lines named with file and line', (t) => {
  const r = parseRevocationList('# revoked after the 2024 leak\n\ned25519:0123456789ABCDEF  # old key\nx509-sha256:' + 'ab'.repeat(32) + '\n', 'rev.txt');
  t.deepEqual(r, { ok: true, value: { ed25519KeyIds: ['0123456789abcdef'], x509Sha256: ['ab'.repeat(32)] } });
  const bad1 = parseRevocationList('ed25519:0123\n', 'rev.txt');
  t.regex(bad1.ok ? '' : bad1.error, /^rev.txt:1: Ed25519 key id must be 16 hex digits/);
  const bad2 = parseRevocationList('# c\nsha1:00\n', 'rev.txt');
  t.regex(bad2.ok ? '' : bad2.error, /^rev.txt:2: expected/);
});

fixtureTest('keyringFromFiles: public key, certificate (DER) and revocation files together', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-keys-'));
  try {
    const kp = generateEd25519KeyPair();
    const w = writeKeyPairFiles(dir, 'k', kp, 'module-signing');
    if (!w.ok) throw new Error(w.error);
    writeFileSync(join(dir, 'rev.txt'), '# nothing revoked yet\n');
    const data = keyringDataFromFiles({ pubkeys: [w.value.publicPath], certs: [fixtures.signingKeyDer], revoked: [join(dir, 'rev.txt')] });
    t.true(data.ok);
    const ring = keyringFromFiles({ pubkeys: [w.value.publicPath], certs: [fixtures.signingKeyDer], revoked: [join(dir, 'rev.txt')] });
    if (!ring.ok) throw new Error(ring.error);
    t.true(verifyModuleSignature(signed(elf, kp), ring.value).accepted);
    t.true(verifyModuleSignature(readFixtureModule('virtio'), ring.value).accepted);
    const badCert = keyringFromFiles({ certs: [join(dir, 'rev.txt')] });
    t.regex(badCert.ok ? '' : badCert.error, /rev\.txt: not an X.509 certificate/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
