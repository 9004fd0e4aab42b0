/**
 * Ed25519 public keys that must be refused (shared/crypto/ed25519-public-key.ts),
 * everywhere a key enters: both verifiers, the keyring, and key files.
 *
 * Attack: a key file holding a small-order point (the identity `01 00..00`, or one of the
 * other seven, in any encoding) lets anyone sign anything: with it the signature R =
 * identity, S = 0 verifies for every message (or one in 2, 4, 8). Before, both verifiers
 * accepted that forgery and the keyring loaded such keys. Expected stop: the key file and the
 * keyring refuse the key when they load it, naming the file and why, and both verifiers
 * refuse it too. A non-canonical encoding (y >= p, such as `ee ff..ff 7f` = p + 1) is
 * refused by both verifiers, as RFC 8032 5.1.3 says decoding must fail.
 */
import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { verifyModuleCommand } from '../../cli/commands/verify-module.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { keyringFromFiles } from '../../tools/key-files.ts';
import { ed25519EncodingProblem, ed25519PublicKeyProblem } from '../../shared/crypto/ed25519-public-key.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair, verifyEd25519Nacl, verifyEd25519Node } from '../../shared/crypto/ed25519.ts';

const hex = (s: string): Uint8Array => new Uint8Array(Buffer.from(s, 'hex'));
const FF30 = 'ff'.repeat(30);

/** The eight small-order points in their canonical encodings (as libsodium lists them), with their orders. */
const SMALL_ORDER: readonly (readonly [string, number])[] = [
  ['01' + '00'.repeat(31), 1],
  ['ec' + FF30 + '7f', 2],
  ['00'.repeat(32), 4],
  ['00'.repeat(31) + '80', 4],
  ['c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 8],
  ['c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 8],
  ['26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05', 8],
  ['26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85', 8],
];
/** The same points in non-canonical encodings: y + p for y = 0 and 1 (either sign), and x = 0 with the sign bit set. */
const SMALL_ORDER_NON_CANONICAL: readonly string[] = [
  'ed' + FF30 + '7f',
  'ed' + FF30 + 'ff',
  'ee' + FF30 + '7f',
  'ee' + FF30 + 'ff',
  '01' + '00'.repeat(30) + '80',
  'ec' + FF30 + 'ff',
];

// Independent check of the list: decode each point and add it to itself until the identity.
const P = (1n << 255n) - 19n;
const m = (a: bigint): bigint => ((a % P) + P) % P;
const pw = (b: bigint, e: bigint): bigint => (e === 0n ? 1n : e & 1n ? m(b * pw(m(b * b), e >> 1n)) : pw(m(b * b), e >> 1n));
const inv = (a: bigint): bigint => pw(a, P - 2n);
const D = m(-121665n * inv(121666n));
function decodePoint(enc: Uint8Array): [bigint, bigint] {
  const b = Uint8Array.from(enc);
  const sign = b[31]! >> 7;
  b[31]! &= 0x7f;
  const y = m(BigInt(`0x${Buffer.from(b).reverse().toString('hex')}`));
  const x2 = m((y * y - 1n) * inv(D * y * y + 1n));
  let x = pw(x2, (P + 3n) / 8n);
  if (m(x * x - x2) !== 0n) x = m(x * pw(2n, (P - 1n) / 4n));
  if (Number(x & 1n) !== sign) x = m(-x);
  return [x, y];
}
function orderOf(enc: Uint8Array): number {
  const p = decodePoint(enc);
  let q = p;
  for (let n = 1; n <= 8; n++) {
    if (q[0] === 0n && q[1] === 1n) return n;
    const t = m(D * p[0] * q[0] * p[1] * q[1]);
    q = [m((p[0] * q[1] + p[1] * q[0]) * inv(1n + t)), m((p[1] * q[1] + p[0] * q[0]) * inv(1n - t))];
  }
  return Infinity;
}

/** The forgery: R = identity, S = 0. */
const FORGED = hex('01' + '00'.repeat(63));
const MESSAGES = ['', 'heki-sim module signature v1\0', 'any module at all'].map((s) => new TextEncoder().encode(s));

test('the eight encodings listed are the small-order points, with the orders given', (t) => {
  for (const [enc, order] of SMALL_ORDER) t.is(orderOf(hex(enc)), order, enc);
  t.is(orderOf(generateEd25519KeyPair().publicKey), Infinity);
});

test('a small-order key, canonical or not, is refused and its forgery R = identity, S = 0 fails on both verifiers', (t) => {
  for (const enc of [...SMALL_ORDER.map(([e]) => e), ...SMALL_ORDER_NON_CANONICAL]) {
    const pk = hex(enc);
    t.regex(ed25519PublicKeyProblem(pk) ?? '', /of small order: with it the signature R = identity, S = 0 verifies/, enc);
    t.regex(ed25519EncodingProblem(pk) ?? '', /small order/, enc);
    for (const msg of MESSAGES) {
      t.false(verifyEd25519Node(msg, FORGED, pk), `node ${enc}`);
      t.false(verifyEd25519Nacl(msg, FORGED, pk), `tweetnacl ${enc}`);
    }
  }
  t.regex(ed25519PublicKeyProblem(hex('ee' + FF30 + '7f')) ?? '', /the identity point \(in a non-canonical encoding: y >= p\)/);
  t.regex(ed25519PublicKeyProblem(hex('01' + '00'.repeat(30) + '80')) ?? '', /non-canonical encoding: x = 0 with the sign bit set/);
});

test('a non-canonical encoding of a large-order point (y >= p) is refused; so is a y on no curve point', (t) => {
  // y = 2..18 encoded as y + p: the ones on the curve are large-order points in a second encoding.
  let seen = 0;
  for (let y = 2; y <= 18; y++) {
    const canonical = new Uint8Array(32);
    canonical[0] = y;
    const alias = hex(((P + BigInt(y)).toString(16).match(/../g) ?? []).reverse().join(''));
    const onCurve = ed25519PublicKeyProblem(canonical) === undefined;
    if (onCurve) seen++;
    t.regex(
      ed25519PublicKeyProblem(alias) ?? '',
      onCurve ? /not canonically encoded \(y >= p; RFC 8032 5\.1\.3/ : /not canonically encoded|not a point of the curve/,
    );
    t.false(verifyEd25519Node(MESSAGES[0]!, FORGED, alias));
    t.false(verifyEd25519Nacl(MESSAGES[0]!, FORGED, alias));
    if (!onCurve) t.regex(ed25519PublicKeyProblem(canonical) ?? '', /not a point of the curve/);
  }
  t.true(seen > 0, 'some y in 2..18 is on the curve');
  t.is(ed25519PublicKeyProblem(generateEd25519KeyPair().publicKey), undefined);
});

test('the keyring, key files and `heki verify-module --pubkey` refuse a small-order key at load, naming the file and why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-small-order-'));
  try {
    for (const enc of [SMALL_ORDER[0]![0], 'ee' + FF30 + '7f']) {
      const pk = hex(enc);
      const keyId = ed25519KeyIdHex(pk);
      const path = join(dir, `evil-${enc.slice(0, 2)}.pub.json`);
      writeFileSync(path, JSON.stringify({ type: 'heki-ed25519-public-key', role: 'module-signing', keyId, publicKey: Buffer.from(pk).toString('base64') }));
      const fromFile = keyringFromFiles({ pubkeys: [path] });
      t.false(fromFile.ok);
      t.regex(
        fromFile.ok ? '' : fromFile.error,
        new RegExp(`^${path.replace(/[.]/g, '\\.')}: refused public key ${enc}: it is the identity point.*of small order.*anyone could sign`),
      );
      const fromData = Keyring.fromData({
        ed25519: [{ keyId, role: 'vmm', publicKey: pk, source: 'evil.pub.json' }],
        certificates: [],
        revoked: { ed25519KeyIds: [], x509Sha256: [] },
      });
      t.false(fromData.ok);
      t.regex(fromData.ok ? '' : fromData.error, /^keyring data: ed25519\[0\] \(evil\.pub\.json\): refused public key .*small order/);
      // `heki verify-module --pubkey` loads through the same path: exit 2, before reading the module.
      let err = '';
      const code = await verifyModuleCommand.run(['missing.ko', '--pubkey', path], { out: () => {}, err: (s) => void (err += s), cwd: dir });
      t.is(code, 2);
      t.regex(err, new RegExp(`^heki verify-module: ${path.replace(/[.]/g, '\\.')}: refused public key ${enc}: .*small order`));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
