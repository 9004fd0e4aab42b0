/**
 * The module signature trailer (shared/module-signature.ts): round trips, the real Debian
 * PKCS#7 trailers, and a named error for every malformed trailer — never an exception.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';
import { readdirSync } from 'node:fs';
import {
  HASH_ALGO_SHA256,
  MODULE_SIG_MARKER,
  MODULE_SIGNATURE_STRUCT_SIZE,
  PKEY_ID_HEKI_ED25519,
  PKEY_ID_PGP,
  PKEY_ID_PKCS7,
  appendModuleSignature,
  parseModuleSignature,
  stripModuleSignature,
  type SignatureTrailerError,
} from '../../shared/module-signature.ts';
import { fixtures, needsFixtures, readFixtureModule } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);
const elf = new Uint8Array(1000).map((_, i) => i & 0xff);

function unwrap<T>(r: { ok: true; value: T } | { ok: false; error: unknown }): T {
  if (!r.ok) throw new Error(`unexpected error: ${JSON.stringify(r.error)}`);
  return r.value;
}

/** A trailer built by hand: [body][struct][marker], to make malformed ones. */
function rawTrailer(
  body: Uint8Array,
  f: { algo?: number; hash?: number; idType: number; signerLen?: number; keyIdLen?: number; pad?: number; sigLen: number },
): Uint8Array {
  const s = new Uint8Array(MODULE_SIGNATURE_STRUCT_SIZE);
  s[0] = f.algo ?? 0;
  s[1] = f.hash ?? 0;
  s[2] = f.idType;
  s[3] = f.signerLen ?? 0;
  s[4] = f.keyIdLen ?? 0;
  s[5] = f.pad ?? 0;
  new DataView(s.buffer).setUint32(8, f.sigLen >>> 0, false);
  return Uint8Array.from([...body, ...s, ...MODULE_SIG_MARKER]);
}

function errorOf(file: Uint8Array): SignatureTrailerError {
  const r = parseModuleSignature(file);
  if (r.ok) throw new Error('expected an error');
  return r.error;
}

test('an Ed25519 trailer round-trips: parse(append(elf, parts)) gives the parts back, as views', (t) => {
  const signer = new TextEncoder().encode('heki test key');
  const keyId = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8);
  const signature = new Uint8Array(64).fill(0xab);
  const file = unwrap(appendModuleSignature(elf, { idType: PKEY_ID_HEKI_ED25519, hash: HASH_ALGO_SHA256, signer, keyId, signature }));
  t.is(file.length, elf.length + signer.length + 8 + 64 + 12 + 28);
  t.deepEqual([...file.subarray(file.length - 28)], [...MODULE_SIG_MARKER]);
  const m = unwrap(parseModuleSignature(file));
  t.is(m.idType, PKEY_ID_HEKI_ED25519);
  t.is(m.hash, HASH_ALGO_SHA256);
  t.is(m.algo, 0);
  t.deepEqual(m.elf, elf);
  t.is(m.elf.buffer, file.buffer, 'elf is a subarray, not a copy');
  t.deepEqual(m.signer, signer);
  t.deepEqual(m.keyId, keyId);
  t.deepEqual(m.signature, signature);
  t.deepEqual(unwrap(stripModuleSignature(file)), elf);
});

test('an unsigned file is the distinct "unsigned" outcome, and strip returns it whole', (t) => {
  const e = errorOf(elf);
  t.is(e.kind, 'unsigned');
  t.regex(e.message, /not signed/);
  t.is(unwrap(stripModuleSignature(elf)), elf);
  t.is(errorOf(new Uint8Array(0)).kind, 'unsigned');
});

test('truncated struct: marker with 12 or fewer bytes before it', (t) => {
  for (const n of [0, 5, 12]) {
    const file = Uint8Array.from([...new Uint8Array(n), ...MODULE_SIG_MARKER]);
    const e = errorOf(file);
    t.is(e.kind, 'truncated-struct');
    t.regex(e.message, /truncated/);
  }
});

test('sig_len larger than the file is named', (t) => {
  const e = errorOf(rawTrailer(new Uint8Array(100), { idType: PKEY_ID_PKCS7, sigLen: 0xffffffff }));
  t.is(e.kind, 'sig-len-overflow');
  t.regex(e.message, /sig_len 4294967295/);
  // Kernel rule: sig_len may not consume the whole file (sig_len >= file_len - 12 is -EBADMSG).
  t.is(errorOf(rawTrailer(new Uint8Array(100), { idType: PKEY_ID_PKCS7, sigLen: 100 })).kind, 'sig-len-overflow');
  t.true(parseModuleSignature(rawTrailer(new Uint8Array(100), { idType: PKEY_ID_PKCS7, sigLen: 99 })).ok);
});

test('signer and key id lengths that overflow are named', (t) => {
  const e = errorOf(rawTrailer(new Uint8Array(100), { idType: PKEY_ID_PGP, signerLen: 200, keyIdLen: 8, sigLen: 10 }));
  t.is(e.kind, 'signer-overflow');
  t.regex(e.message, /signer_len 200/);
});

test('PKCS#7 with non-zero algo/hash/signer_len/key_id_len is refused as the kernel does', (t) => {
  for (const f of [{ algo: 1 }, { hash: 4 }, { signerLen: 1 }, { keyIdLen: 1 }]) {
    const e = errorOf(rawTrailer(new Uint8Array(100), { idType: PKEY_ID_PKCS7, sigLen: 10, ...f }));
    t.is(e.kind, 'pkcs7-nonzero-fields');
    t.regex(e.message, /PKCS#7.*non-zero/);
  }
});

test('unknown id_type and non-zero padding are named', (t) => {
  const e = errorOf(rawTrailer(new Uint8Array(100), { idType: 9, sigLen: 10 }));
  t.is(e.kind, 'unknown-id-type');
  t.regex(e.message, /id_type 9/);
  t.is(errorOf(rawTrailer(new Uint8Array(100), { idType: PKEY_ID_PKCS7, sigLen: 10, pad: 1 })).kind, 'nonzero-padding');
});

test('Ed25519 trailers must have key_id_len 8, sig_len 64 and hash SHA-256', (t) => {
  const body = new Uint8Array(200);
  t.true(parseModuleSignature(rawTrailer(body, { idType: PKEY_ID_HEKI_ED25519, hash: HASH_ALGO_SHA256, keyIdLen: 8, sigLen: 64 })).ok);
  for (const f of [
    { keyIdLen: 4, sigLen: 64, hash: 4 },
    { keyIdLen: 8, sigLen: 63, hash: 4 },
    { keyIdLen: 8, sigLen: 64, hash: 0 },
  ]) {
    const e = errorOf(rawTrailer(body, { idType: PKEY_ID_HEKI_ED25519, ...f }));
    t.is(e.kind, 'bad-ed25519-fields');
    t.regex(e.message, /Ed25519 trailer/);
  }
});

test('strip refuses a malformed trailer instead of guessing', (t) => {
  const r = stripModuleSignature(rawTrailer(new Uint8Array(10), { idType: 7, sigLen: 1 }));
  t.false(r.ok);
});

test('append refuses fields that do not fit', (t) => {
  t.false(appendModuleSignature(elf, { idType: PKEY_ID_HEKI_ED25519, signer: new Uint8Array(256), signature: new Uint8Array(64) }).ok);
  t.false(appendModuleSignature(elf, { idType: PKEY_ID_PKCS7, algo: 300, signature: new Uint8Array(1) }).ok);
  t.false(appendModuleSignature(new Uint8Array(0), { idType: PKEY_ID_PKCS7, signature: new Uint8Array(1) }).ok);
});

test('property: parsing arbitrary bytes ending in the marker never throws, and every success is consistent', async (t) => {
  await checkProperty(
    t,
    'property: parsing arbitrary bytes ending in the marker never throws, and every success is consistent',
    fc.property(fc.uint8Array({ maxLength: 300 }), fc.boolean(), (body, withMarker) => {
      const file = withMarker ? Uint8Array.from([...body, ...MODULE_SIG_MARKER]) : body;
      const r = parseModuleSignature(file);
      if (r.ok) {
        const m = r.value;
        const total = m.elf.length + m.signer.length + m.keyId.length + m.signature.length + 12 + 28;
        return total === file.length && m.elf.length > 0;
      }
      return typeof r.error.message === 'string' && r.error.message.length > 0;
    }),
    scaledRuns(3000),
  );
});

test('property: append then parse is the identity for valid parts', async (t) => {
  await checkProperty(
    t,
    'property: append then parse is the identity for valid parts',
    fc.property(
      fc.uint8Array({ minLength: 1, maxLength: 200 }),
      fc.uint8Array({ maxLength: 40 }),
      fc.uint8Array({ maxLength: 20 }),
      fc.uint8Array({ maxLength: 100 }),
      (e, signer, keyId, signature) => {
        const file = unwrap(appendModuleSignature(e, { idType: PKEY_ID_PGP, signer, keyId, signature }));
        const m = unwrap(parseModuleSignature(file));
        return (
          Buffer.from(m.elf).equals(e) &&
          Buffer.from(m.signer).equals(signer) &&
          Buffer.from(m.keyId).equals(keyId) &&
          Buffer.from(m.signature).equals(signature)
        );
      },
    ),
    scaledRuns(100),
  );
});

fixtureTest('every Debian fixture module has a PKCS#7 trailer with sig_len 681 and zero fields', (t) => {
  const names = readdirSync(fixtures.modulesDir).filter((n) => n.endsWith('.ko'));
  t.is(names.length, 10);
  for (const n of names) {
    const file = readFixtureModule(n.replace(/\.ko$/, ''));
    const m = unwrap(parseModuleSignature(file));
    t.is(m.idType, PKEY_ID_PKCS7, n);
    t.is(m.algo, 0);
    t.is(m.hash, 0);
    t.is(m.signer.length, 0);
    t.is(m.keyId.length, 0);
    t.is(m.signature.length, 681, n);
    t.is(m.elf.length, file.length - 28 - 12 - 681, n);
    t.is(m.signature[0], 0x30, 'a DER SEQUENCE');
    // The ELF starts with the ELF magic.
    t.deepEqual([...m.elf.subarray(0, 4)], [0x7f, 0x45, 0x4c, 0x46]);
  }
});
