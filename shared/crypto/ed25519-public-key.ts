/**
 * What makes a 32-byte string a usable Ed25519 public key, checked where a key enters the
 * verifier (key files, the keyring) and, in its cheap part, on every verification.
 *
 * RFC 8032 5.1.3: the encoding is y (255 bits, little-endian) and the sign of x in the top
 * bit; decoding fails when y >= p, when x^2 = (y^2 - 1) / (d y^2 + 1) has no square root,
 * and when x = 0 but the sign bit is 1. Neither tweetnacl nor OpenSSL refuses y >= p (both
 * reduce y mod p) or the x = 0 case, so the verifier does.
 *
 * Small order: the eight points of order 1, 2, 4 or 8 (the identity `01 00..00` among them)
 * have y in {1, p - 1, 0, and two order-8 values}, whatever the sign bit. For such a key A
 * the hash-dependent term [k]A of the verification equation [S]B = R + [k]A is the identity
 * for every k (order 1) or for a fixed fraction of messages, so the signature R = identity,
 * S = 0 verifies for every message (or one in 2, 4, 8): anyone could sign anything. No
 * honest key is of small order (a clamped scalar times the base point never is), so such a
 * key is refused, in any encoding, canonical or not.
 */

/** p = 2^255 - 19. */
const P = (1n << 255n) - 19n;

/** y of every point of small order, with that order (checked by the test with point arithmetic). */
const SMALL_ORDER_Y: ReadonlyMap<bigint, number> = new Map([
  [1n, 1],
  [P - 1n, 2],
  [0n, 4],
  [0x7a03ac9277fdc74ec6cc392cfa53202a0f67100d760b3cba4fd84d3d706a17c7n, 8],
  [0x05fc536d880238b13933c6d305acdfd5f098eff289f4c345b027b2c28f95e826n, 8],
]);

function mod(a: bigint): bigint {
  const r = a % P;
  return r < 0n ? r + P : r;
}

function powMod(b: bigint, e: bigint): bigint {
  let r = 1n;
  let x = mod(b);
  for (let k = e; k > 0n; k >>= 1n) {
    if (k & 1n) r = mod(r * x);
    x = mod(x * x);
  }
  return r;
}

/** d = -121665 / 121666 mod p (RFC 8032 5.1). */
const D = mod(-121665n * powMod(121666n, P - 2n));

/** The encoded y (top bit cleared, not reduced) and the sign bit of a 32-byte key. */
function split(publicKey: Uint8Array): { y: bigint; sign: number } {
  let y = 0n;
  for (let i = 31; i >= 0; i--) y = (y << 8n) | BigInt(i === 31 ? publicKey[i]! & 0x7f : publicKey[i]!);
  return { y, sign: publicKey[31]! >> 7 };
}

/**
 * The problem of a 32-byte public key that decoding (RFC 8032 5.1.3) or the small-order rule
 * refuses, without the curve equation: what every verification checks (a few BigInt
 * operations). Undefined for a canonical key of large order.
 */
export function ed25519EncodingProblem(publicKey: Uint8Array): string | undefined {
  if (publicKey.length !== 32) return `is ${publicKey.length} bytes, not 32`;
  const { y, sign } = split(publicKey);
  const nonCanonical = y >= P ? `y >= p` : sign === 1 && (y === 1n || y === P - 1n) ? 'x = 0 with the sign bit set' : undefined;
  const order = SMALL_ORDER_Y.get(mod(y));
  if (order !== undefined) {
    const which = order === 1 ? 'the identity point' : `a point of order ${order}`;
    const encoding = nonCanonical === undefined ? '' : ` (in a non-canonical encoding: ${nonCanonical})`;
    return `is ${which}${encoding}, of small order: with it the signature R = identity, S = 0 verifies for every message${order === 1 ? '' : ` or one in ${order}`}, so anyone could sign`;
  }
  if (nonCanonical !== undefined) return `is not canonically encoded (${nonCanonical}; RFC 8032 5.1.3: decoding fails)`;
  return undefined;
}

/**
 * Every reason to refuse `publicKey` as an Ed25519 public key: {@link ed25519EncodingProblem},
 * and a y that is on no point of the curve (x^2 has no square root). Undefined for a good key.
 * For key loading (a modular exponentiation per call); never throws.
 */
export function ed25519PublicKeyProblem(publicKey: Uint8Array): string | undefined {
  const encoding = ed25519EncodingProblem(publicKey);
  if (encoding !== undefined) return encoding;
  const y = split(publicKey).y;
  const y2 = mod(y * y);
  const x2 = mod((y2 - 1n) * powMod(D * y2 + 1n, P - 2n));
  // Euler's criterion: x2 is a square mod p iff x2^((p-1)/2) is 0 or 1.
  const legendre = powMod(x2, (P - 1n) / 2n);
  return legendre === 0n || legendre === 1n ? undefined : 'is not a point of the curve (RFC 8032 5.1.3: x^2 = (y^2 - 1) / (d y^2 + 1) has no square root)';
}
