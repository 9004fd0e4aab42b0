/**
 * The kernel manifest built from the real fixture kernel: its counts, hashes and trampolines,
 * and its signature as loadManifest() checks it (vendor key accepted; an edited body, an
 * unknown key, a module-signing key and a revoked key each refused with a named reason).
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { type KeyringData } from '../../shared/keyring-data.ts';
import { loadManifest, type ManifestBody } from '../../verifier-vm/manifest.ts';
import { buildManifestBody, bzImageKernelName, normalisedText, signManifest } from '../../tools/manifest-builder.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair, type Ed25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { fixtures, loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

let bodyPromise: Promise<{ body: ManifestBody; ms: number }> | undefined;
function fixtureBody(): Promise<{ body: ManifestBody; ms: number }> {
  bodyPromise ??= loadFixtureKernel().then((k) => {
    const t0 = performance.now();
    const body = buildManifestBody(k, {
      kernel: 'linux-6.1.0-56-amd64',
      vmlinuzSha256: createHash('sha256').update(readFileSync(fixtures.vmlinuz)).digest('hex'),
    });
    return { body, ms: performance.now() - t0 };
  });
  return bodyPromise;
}

function keyring(keys: Array<{ kp: Ed25519KeyPair; role: 'kernel-vendor' | 'module-signing' }>, revoked: string[] = []): Keyring {
  const data: KeyringData = {
    ed25519: keys.map(({ kp, role }) => ({ keyId: ed25519KeyIdHex(kp.publicKey), role, publicKey: kp.publicKey })),
    certificates: [],
    revoked: { ed25519KeyIds: revoked, x509Sha256: [] },
  };
  const r = Keyring.fromData(data);
  if (!r.ok) throw new Error(r.error);
  return r.value;
}

fixtureTest('the manifest lists 40,521 ftrace sites, 6,299 jump entries and 10,503 exports', async (t) => {
  const { body, ms } = await fixtureBody();
  t.log(`manifest body built in ${ms.toFixed(0)} ms (kernel already decompressed)`);
  t.is(body.mcountSites.length, 40521);
  t.is(body.jumpEntries.length, 6299);
  t.is(Object.keys(body.exports).length, 10503);
  const sites = body.mcountSites.map((s) => BigInt(`0x${s}`));
  t.true(
    sites.every((s, i) => i === 0 || s > sites[i - 1]!),
    'sorted, no duplicates',
  );
  t.true(
    body.jumpEntries.every((e) => (BigInt(`0x${e.key}`) & 3n) === 0n),
    'key flags stripped',
  );
  t.is(body.jumpEntries.filter((e) => e.len === 2).length, 3260 + 136);
  t.is(body.fentry, 'ffffffff81076650');
  t.deepEqual(body.ftraceTrampolines, { ftrace_caller: 'ffffffff81076660', ftrace_regs_caller: 'ffffffff81076730', ftrace_stub: 'ffffffff81076630' });
  t.is(body.symbols['_stext'], 'ffffffff81000000');
  t.is(body.symbols['__end_rodata'], 'ffffffff828eb000');
  t.is(body.kernel, 'linux-6.1.0-56-amd64');
  t.regex(body.vmlinuzSha256, /^[0-9a-f]{64}$/);
});

fixtureTest('.text is hashed with every ftrace site as the 5-byte NOP, .rodata as in the file', async (t) => {
  const k = await loadFixtureKernel();
  const { body } = await fixtureBody();
  t.deepEqual(
    body.sections.map((s) => [s.name, s.vaddr]),
    [
      ['.text', 'ffffffff81000000'],
      ['.rodata', 'ffffffff82000000'],
    ],
  );
  const text = k.sectionByName('.text')!;
  const norm = normalisedText(k);
  const inText = k.mcountSites.filter((s) => s.section === '.text');
  t.is(inText.length, 38252);
  const off = Number(inText[0]!.address - text.vaddr);
  t.deepEqual([...norm.subarray(off, off + 5)], [0x0f, 0x1f, 0x44, 0x00, 0x00]);
  t.is(text.bytes[off], 0xe8, 'the file holds the call');
  const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  t.is(body.sections[0]!.sha256, sha(norm));
  t.not(body.sections[0]!.sha256, sha(text.bytes));
  t.is(body.sections[1]!.sha256, sha(k.sectionByName('.rodata')!.bytes));
  t.is(body.sections[0]!.size, text.size);
  t.is(body.sections[0]!.paddr, '1000000');
});

fixtureTest('a signed manifest loads against a keyring with the vendor key', async (t) => {
  const { body } = await fixtureBody();
  const vendor = generateEd25519KeyPair();
  const file = signManifest(body, vendor);
  const r = loadManifest(file, keyring([{ kp: vendor, role: 'kernel-vendor' }]));
  t.true(r.ok, r.ok ? '' : r.error);
  if (!r.ok) return;
  t.is(r.value.keyId, ed25519KeyIdHex(vendor.publicKey));
  t.is(r.value.mcountSites.size, 40521);
  t.is(r.value.jumpEntries.size, 6299);
  t.is(r.value.exports.size, 10503);
  t.is(r.value.fentry, 0xffffffff81076650n);
  t.is(r.value.ftraceTrampolines.get(0xffffffff81076660n), 'ftrace_caller');
  t.deepEqual(
    r.value.textRanges.map((x) => x.name),
    ['.text', '.init.text'],
    'the init region comes from __init_begin/__init_end',
  );
  t.is(r.value.staticCalls.sites.size, 4085);
  t.is(r.value.staticCalls.keys.size, 686);
  t.is(r.value.staticCalls.functions.length, 47001);
});

fixtureTest('the manifest lists 4,085 static call sites, 686 keys with trampolines and the function entries as offsets', async (t) => {
  const { body } = await fixtureBody();
  const sc = body.staticCalls!;
  t.is(sc.sites.length, 4085);
  t.is(sc.sites.filter((s) => s.tail).length, 27);
  t.true(
    sc.sites.every((s) => (BigInt(`0x${s.key}`) & 3n) === 0n),
    'key flags stripped',
  );
  t.is(sc.keys.length, 686);
  t.deepEqual(
    sc.keys.find((k) => k.name === 'cond_resched'),
    { key: 'ffffffff82a5de10', trampoline: 'ffffffff81e005a0', name: 'cond_resched' },
  );
  t.is(sc.functionBase, 'ffffffff81000000');
  t.is(sc.functions.length, 47001);
  t.is(sc.functions[0], '0', '_stext itself (startup_64)');
  t.is(sc.return0, 'ffffffff812603e0');
  t.is(sc.returnThunk, 'ffffffff81e01d30');
  t.log(`staticCalls: ${JSON.stringify(sc).length} of ${JSON.stringify(body).length} body bytes`);
});

fixtureTest('an edited body, an unknown key, a module-signing key and a revoked key are refused by name', async (t) => {
  const { body } = await fixtureBody();
  const vendor = generateEd25519KeyPair();
  const other = generateEd25519KeyPair();
  const file = signManifest(body, vendor);

  const parsed = JSON.parse(file) as { body: string };
  const i = parsed.body.indexOf('"fentry":"') + '"fentry":"'.length;
  const edited = JSON.stringify({ ...parsed, body: `${parsed.body.slice(0, i)}0${parsed.body.slice(i + 1)}` });
  const e1 = loadManifest(edited, keyring([{ kp: vendor, role: 'kernel-vendor' }]));
  t.false(e1.ok);
  if (!e1.ok) t.is(e1.error, 'manifest signature does not match its body');

  const e2 = loadManifest(file, keyring([{ kp: other, role: 'kernel-vendor' }]));
  t.false(e2.ok);
  if (!e2.ok) t.is(e2.error, `manifest signed by unknown key ${ed25519KeyIdHex(vendor.publicKey)}`);

  const modKey = generateEd25519KeyPair();
  const e3 = loadManifest(signManifest(body, modKey), keyring([{ kp: modKey, role: 'module-signing' }]));
  t.false(e3.ok);
  if (!e3.ok) t.regex(e3.error, /has role module-signing, not kernel-vendor/);

  const id = ed25519KeyIdHex(vendor.publicKey);
  const e4 = loadManifest(file, keyring([{ kp: vendor, role: 'kernel-vendor' }], [id]));
  t.false(e4.ok);
  if (!e4.ok) t.is(e4.error, `manifest key ${id} is revoked`);
});

fixtureTest('the bzImage header names the release', (t) => {
  const r = bzImageKernelName(new Uint8Array(readFileSync(fixtures.vmlinuz)));
  t.deepEqual(r, { ok: true, value: 'linux-6.1.0-56-amd64' });
});

test('a file that is not a bzImage has no release name', (t) => {
  const r = bzImageKernelName(new Uint8Array(0x300));
  t.false(r.ok);
  if (!r.ok) t.regex(r.error, /HdrS/);
  t.false(bzImageKernelName(new Uint8Array(10)).ok);
});
