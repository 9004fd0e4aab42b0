/**
 * PKCS#7 module signatures held against two outside references: each case of
 * test/fixtures/pkcs7-cases/cases.json (a mutation of Debian's cordic.ko signature, or a
 * signature by a throwaway key; made by generate.ts there) records what `openssl cms -verify`
 * said and what Linux 6.1 would say, and the verifier's verdict must be the one recorded.
 *
 * Attacks and expected stops: a signer serial with a redundant leading zero byte (accepted
 * before: matching stripped the zeros) is refused as not minimal DER, naming OpenSSL's
 * "illegal padding" and the kernel's raw-byte match; SignedData version 3 with a version 1
 * SignerInfo (issue 17's `[[25, 2]]`) is refused as the kernel's version mismatch; signed
 * attributes of any kind (accepted before when they held a right messageDigest, even
 * without or with two contentType attributes) are refused as the kernel refuses them on
 * module signatures; BER lengths are refused as not DER (stricter than the kernel, which
 * takes them: the one divergence, and it fails closed).
 */
import test from 'ava';
import { readFileSync } from 'node:fs';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { verifyPkcs7ModuleSignature } from '../../verifier-vm/signature/pkcs7.ts';
import { loadPkcs7Cases } from '../fixtures/pkcs7-cases/cases.ts';
import { fixtureModuleElf, fixtures, needsFixtures, type SimpleTestFn } from '../helpers/fixtures.ts';

const data = loadPkcs7Cases();
const fromHex = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'));

function keyringWith(der: Uint8Array): Keyring {
  const r = Keyring.fromData({ ed25519: [], certificates: [{ der, role: 'module-signing' }], revoked: { ed25519KeyIds: [], x509Sha256: [] } });
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

const fixtureTest = needsFixtures(test);

for (const c of data.cases) {
  const register: SimpleTestFn = c.signer === 'debian' ? fixtureTest : (title, impl) => test(title, impl);
  const verdict = c.expected === 'accepted' ? 'accepted' : `refused (${c.expected})`;
  register(
    `${c.name}: ${c.what}: ${verdict}; kernel ${c.kernel.accepted ? 'accepts' : 'refuses'}, OpenSSL ${c.openssl.accepted ? 'accepts' : 'refuses'}`,
    (t) => {
      const cert = c.signer === 'debian' ? new Uint8Array(readFileSync(fixtures.signingKeyDer)) : fromHex(data.throwawayCertHex);
      const content = c.content === 'cordic' ? fixtureModuleElf('cordic') : fromHex(data.syntheticContentHex);
      const v = verifyPkcs7ModuleSignature(content, fromHex(c.blobHex), keyringWith(cert));
      t.is(v.ok ? 'accepted' : v.kind, c.expected, v.reason);
      t.regex(v.reason, new RegExp(c.reason));
      // The verifier is never more permissive than the kernel: what the kernel refuses, we refuse.
      if (!c.kernel.accepted) t.false(v.ok, `the kernel refuses ${c.name} (${c.kernel.says})`);
    },
  );
}

test('the cases cover what issue 15 found and the kernel-versus-OpenSSL disagreements', (t) => {
  const names = data.cases.map((c) => c.name);
  for (const n of [
    'serial-leading-zero',
    'signeddata-version-3',
    'signed-attributes',
    'signed-attributes-no-content-type',
    'signed-attributes-two-content-types',
  ]) {
    t.true(names.includes(n), n);
  }
  // Both references refuse the padded serial; OpenSSL accepts what the kernel refuses on versions and attributes.
  const byName = new Map(data.cases.map((c) => [c.name, c]));
  t.false(byName.get('serial-leading-zero')!.openssl.accepted);
  t.regex(byName.get('serial-leading-zero')!.openssl.says, /illegal padding/);
  t.true(byName.get('signeddata-version-3')!.openssl.accepted);
  t.true(byName.get('signed-attributes')!.openssl.accepted);
});

// Attack: a keyring certificate whose serial is re-encoded with a long-form length (OpenSSL's
// parser takes it) would give the signer id a second encoding. Stop: the keyring refuses it.
fixtureTest('a certificate that is not DER is refused when the keyring loads it, naming the rule', (t) => {
  const der = Buffer.from(readFileSync(fixtures.signingKeyDer));
  const at = der.indexOf(Buffer.from('021466f54e15', 'hex'));
  t.true(at > 0);
  const longForm = Buffer.concat([der.subarray(0, at), Buffer.of(0x02, 0x81, 0x14), der.subarray(at + 2)]);
  for (const off of [2, 6]) longForm.writeUInt16BE(der.readUInt16BE(off) + 1, off); // Certificate and tbsCertificate lengths
  const r = Keyring.fromData({
    ed25519: [],
    certificates: [{ der: new Uint8Array(longForm), role: 'module-signing', source: 'long-form.der' }],
    revoked: { ed25519KeyIds: [], x509Sha256: [] },
  });
  t.false(r.ok);
  t.regex(r.ok ? '' : r.error, /certificates\[0\] \(long-form\.der\): certificate is not DER: length 20 in the long form/);
});
