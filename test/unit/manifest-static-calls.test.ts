/**
 * The manifest's optional `staticCalls`: indexed into lookups (sites, keys, trampolines,
 * function entries), absent in older manifests (which still load, signed, with an empty
 * index), and refused by name when malformed.
 */
import test from 'ava';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { indexManifest, loadManifest, type ManifestBody } from '../../verifier-vm/manifest.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { K, SC, SC_FUNCTIONS, syntheticBody } from './plugin-synthetic.ts';

const KEY_ID = '0123456789abcdef';

test('staticCalls is indexed: sites by address, keys with their sites, trampolines, sorted function entries', (t) => {
  const m = indexManifest(syntheticBody(), KEY_ID);
  const sc = m.staticCalls;
  t.deepEqual(sc.sites.get(SC.keyA.tail), { key: SC.keyA.key, tail: true });
  t.deepEqual(sc.keys.get(SC.keyA.key), {
    key: SC.keyA.key,
    name: 'sc_a',
    trampoline: SC.keyA.trampoline,
    sites: [...SC.keyA.calls, SC.keyA.tail, SC.keyA.init],
  });
  t.is(sc.trampolines.get(SC.keyB.trampoline), SC.keyB.key);
  t.deepEqual(
    sc.functions,
    [...SC_FUNCTIONS].sort((a, b) => (a < b ? -1 : 1)),
  );
  t.true(sc.functionSet.has(K.func));
  t.is(sc.return0, SC.return0);
  t.is(sc.returnThunk, SC.returnThunk);
});

test('a signed manifest without staticCalls (made before static calls) still loads, with an empty index', (t) => {
  const { staticCalls: _, ...old } = syntheticBody();
  const vendor = generateEd25519KeyPair();
  const keyring = Keyring.fromData({
    ed25519: [{ keyId: ed25519KeyIdHex(vendor.publicKey), role: 'kernel-vendor', publicKey: vendor.publicKey }],
    certificates: [],
    revoked: { ed25519KeyIds: [], x509Sha256: [] },
  });
  if (!keyring.ok) throw new Error(keyring.error);
  const r = loadManifest(signManifest(old as ManifestBody, vendor), keyring.value);
  t.true(r.ok, r.ok ? '' : r.error);
  if (!r.ok) return;
  t.is(r.value.body.staticCalls, undefined);
  t.is(r.value.staticCalls.sites.size, 0);
  t.is(r.value.staticCalls.keys.size, 0);
  t.is(r.value.staticCalls.functions.length, 0);
  t.is(r.value.staticCalls.return0, undefined);
});

test('a malformed staticCalls is refused, naming the field', (t) => {
  const base = syntheticBody();
  const sc = base.staticCalls!;
  const bad = (staticCalls: unknown): string => {
    try {
      indexManifest({ ...base, staticCalls } as ManifestBody, KEY_ID);
      return 'accepted';
    } catch (e) {
      return (e as Error).message;
    }
  };
  t.is(bad({ ...sc, sites: 'x' }), 'staticCalls must be an object with sites, keys and functions arrays');
  t.is(
    bad({ ...sc, sites: [{ site: 'ffffffff81000a00', key: 'ffffffff82a00999', tail: false }] }),
    'staticCalls.sites[0]: key ffffffff82a00999 is not in staticCalls.keys',
  );
  t.is(bad({ ...sc, sites: [{ site: 'ffffffff81000a00', key: 'ffffffff82a00100' }] }), 'staticCalls.sites[0].tail must be a boolean');
  t.is(bad({ ...sc, sites: [...sc.sites, sc.sites[0]] }), 'staticCalls.sites[5]: site ffffffff81000a00 is listed twice');
  t.is(bad({ ...sc, keys: [...sc.keys, sc.keys[0]] }), 'staticCalls.keys[2]: key ffffffff82a00100 is listed twice');
  t.is(bad({ ...sc, functions: ['0x10'] }), 'staticCalls.functions[0] must be a hex string of at most 16 digits');
  t.is(bad({ ...sc, keys: [{ ...sc.keys[0]!, name: '' }, sc.keys[1]] }), 'staticCalls.keys[0].name must be a non-empty string');
});

test('loadManifest names a malformed staticCalls', (t) => {
  const vendor = generateEd25519KeyPair();
  const keyring = Keyring.fromData({
    ed25519: [{ keyId: ed25519KeyIdHex(vendor.publicKey), role: 'kernel-vendor', publicKey: vendor.publicKey }],
    certificates: [],
    revoked: { ed25519KeyIds: [], x509Sha256: [] },
  });
  if (!keyring.ok) throw new Error(keyring.error);
  const body = { ...syntheticBody(), staticCalls: { ...syntheticBody().staticCalls!, functionBase: 'zz' } };
  const r = loadManifest(signManifest(body, vendor), keyring.value);
  t.deepEqual(r, { ok: false, error: 'manifest body is malformed: staticCalls.functionBase must be a hex string of at most 16 digits' });
});
