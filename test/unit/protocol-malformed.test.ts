/**
 * The protocol validators on values that once made them throw (found by
 * test/security/fuzz-text-formats.test.ts): a bigint kind, a null-prototype version. A throw
 * in the worker's validator would crash the verifier VM instead of denying the request.
 */
import test from 'ava';
import { validateRequest, validateVerdict } from '../../shared/protocol.ts';

test('a bigint request kind is named, not a crash', (t) => {
  t.deepEqual(validateRequest({ v: 1, id: 3, kind: 5n }), { ok: false, id: 3, error: 'unknown request kind 5n' });
});

test('a version that cannot be converted to a string is named, not a crash', (t) => {
  const v = Object.create(null) as object;
  t.deepEqual(validateRequest({ v, id: 1, kind: 'module-unload' }), { ok: false, id: 1, error: 'protocol version an object is not 1' });
  t.deepEqual(validateVerdict({ v, id: 1 }), { ok: false, error: 'verdict protocol version an object is not 1' });
});

test('long kinds are cut in the message', (t) => {
  const r = validateRequest({ v: 1, id: 1, kind: 'k'.repeat(1000) });
  t.false(r.ok);
  if (!r.ok) t.true(r.error.length < 100);
});
