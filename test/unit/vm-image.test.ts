/**
 * The signed VM state image format (shared/vm-image.ts): a round trip, every structural
 * problem named, and every check (signature, trusted key, section digest, identity, kind)
 * refusing with its own kind.
 */
import test from 'ava';
import { checkVmImage, decodeVmImage, encodeVmImage, VM_IMAGE_MAGIC, type VmImage } from '../../shared/vm-image.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { publicKeyVmImageVerifier, vmImageSigner } from '../../shared/crypto/vm-image-signature.ts';

const key = generateEd25519KeyPair();
const other = generateEd25519KeyPair();
const VM_ID = '0123456789abcdef0123456789abcdef';

function make(kind: 'hibernate' | 'migration' = 'hibernate'): Uint8Array {
  return encodeVmImage(
    { kind, vm: 'vm0', vmId: VM_ID },
    [
      { name: 'core', bytes: new TextEncoder().encode('{"section":"core"}') },
      { name: 'memory', bytes: Uint8Array.from({ length: 5000 }, (_, i) => i & 0xff) },
      { name: 'empty', bytes: new Uint8Array(0) },
    ],
    vmImageSigner(key),
  );
}

function decoded(b: Uint8Array): VmImage {
  const d = decodeVmImage(b);
  if (!d.ok) throw new Error(d.error.message);
  return d.value;
}

test('an image round-trips and checks with its key', (t) => {
  const img = decoded(make());
  t.is(img.header.vm, 'vm0');
  t.is(img.header.vmId, VM_ID);
  t.deepEqual(
    img.header.sections.map((s) => s.name),
    ['core', 'memory', 'empty'],
  );
  t.is(img.sections.get('memory')!.length, 5000);
  t.is(new TextDecoder().decode(img.sections.get('core')!), '{"section":"core"}');
  t.true(checkVmImage(img, publicKeyVmImageVerifier(key.publicKey), { vm: 'vm0', vmId: VM_ID, kind: 'hibernate' }).ok);
});

test('structural problems are named', (t) => {
  const good = make();
  const bad = (b: Uint8Array): string => {
    const d = decodeVmImage(b);
    return d.ok ? 'decoded' : `${d.error.kind}: ${d.error.message}`;
  };
  t.regex(bad(good.subarray(0, 10)), /^malformed: 10 bytes is too short/);
  const magic = Uint8Array.from(good);
  magic[0] = 0;
  t.regex(bad(magic), /no "HEKIVMI1" magic/);
  const hlen = Uint8Array.from(good);
  new DataView(hlen.buffer).setUint32(8, 0xffffff, true);
  t.regex(bad(hlen), /header length .* does not fit/);
  t.regex(bad(good.subarray(0, good.length - 1)), /^malformed: section memory \(5000 bytes\) runs past the end of the image$/);
  const extra = new Uint8Array(good.length + 3);
  extra.set(good);
  t.regex(bad(extra), /3 bytes follow the last section/);
  const json = Uint8Array.from(good);
  json[12] = 0x20; // the header's opening brace
  t.regex(bad(json), /^malformed: the header is not UTF-8 JSON/);
  const utf = Uint8Array.from(good);
  utf[13] = 0xff;
  t.regex(bad(utf), /^malformed: the header is not UTF-8 JSON/);
  const sigLen = Uint8Array.from(good);
  new DataView(sigLen.buffer).setUint32(12 + new DataView(good.buffer).getUint32(8, true), 63, true);
  t.regex(bad(sigLen), /^malformed: signature length 63 is not 64$/);
  t.deepEqual([...VM_IMAGE_MAGIC], [...new TextEncoder().encode('HEKIVMI1')]);
});

test('every check refuses with its own kind', (t) => {
  const verify = publicKeyVmImageVerifier(key.publicKey);
  const kindOf = (b: Uint8Array, expect: { vm: string; vmId?: string; kind?: 'hibernate' | 'migration' } = { vm: 'vm0' }, v = verify): string => {
    const d = decodeVmImage(b);
    if (!d.ok) return d.error.kind;
    const c = checkVmImage(d.value, v, expect);
    return c.ok ? 'ok' : c.error.kind;
  };
  const good = make();
  t.is(kindOf(good), 'ok');
  t.is(kindOf(good, { vm: 'vm0' }, publicKeyVmImageVerifier(other.publicKey)), 'untrusted-key');
  const img = decoded(good);
  // A header byte changed (the VM's name): the signature no longer verifies.
  const hdr = Uint8Array.from(good);
  const at = 12 + new TextDecoder().decode(img.headerBytes).indexOf('"vm0"') + 3;
  hdr[at] = '1'.charCodeAt(0);
  t.is(kindOf(hdr, { vm: 'vm1' }), 'signature');
  // The signature itself changed.
  const sig = Uint8Array.from(good);
  sig[16 + img.headerBytes.length + 5]! ^= 1;
  t.is(kindOf(sig), 'signature');
  // A section byte changed: the digest in the signed header no longer matches.
  const body = Uint8Array.from(good);
  body[body.length - 100]! ^= 1;
  t.is(kindOf(body), 'digest');
  t.is(kindOf(good, { vm: 'vm1' }), 'identity');
  t.is(kindOf(good, { vm: 'vm0', vmId: 'f'.repeat(32) }), 'identity');
  t.is(kindOf(good, { vm: 'vm0', kind: 'migration' }), 'kind');
  // Re-signed by another key, whatever it says: not the trusted key.
  const forged = encodeVmImage({ kind: 'hibernate', vm: 'vm0', vmId: VM_ID }, [{ name: 'core', bytes: new Uint8Array(1) }], vmImageSigner(other));
  t.is(kindOf(forged), 'untrusted-key');
});

test('an image of another format version is refused naming the version', (t) => {
  // The header is re-written with another version and re-signed: the version check, not the
  // signature, must be what refuses it.
  const withVersion = (version: unknown): string => {
    const img = decoded(make());
    const header = { ...img.header, version };
    const hb = new TextEncoder().encode(JSON.stringify(header));
    const out = new Uint8Array(12 + hb.length + 4 + 64);
    out.set(VM_IMAGE_MAGIC, 0);
    new DataView(out.buffer).setUint32(8, hb.length, true);
    out.set(hb, 12);
    new DataView(out.buffer).setUint32(12 + hb.length, 64, true);
    const d = decodeVmImage(out);
    return d.ok ? 'decoded' : `${d.error.kind}: ${d.error.message}`;
  };
  t.regex(withVersion(1), /^malformed: header version 1 is not 2: version 1 images hold node:v8 structured clones/);
  t.regex(withVersion(3), /^malformed: header version 3 is not 2, the only version this heki-sim reads$/);
  t.regex(withVersion('2'), /^malformed: header version "2" is not 2/);
});
