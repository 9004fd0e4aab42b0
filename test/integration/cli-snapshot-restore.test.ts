/**
 * `heki snapshot` and `heki restore` through their CliCommands: a scenario snapshotted after
 * its steps (the file, its SHA-256 and the VMM's public key file), restored into a fresh VM
 * with the key trusted (exit 0, what was restored), refused when a byte of it changed or when
 * another key is trusted (exit 1, the check named), the attacks run on the restored VM, and
 * the usage errors and files that are not snapshots of this format (exit 2).
 */
import test, { type TestFn } from 'ava';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { formatPublicKeyFile, formatSecretKeyFile } from '../../tools/key-files.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { heki } from '../helpers/cli.ts';
import { encodeVmImage } from '../../shared/vm-image.ts';
import { vmImageSigner } from '../../shared/crypto/vm-image-signature.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);

const dir = mkdtempSync(join(tmpdir(), 'heki-snapshot-'));
test.after.always(() => rmSync(dir, { recursive: true, force: true }));
writeFileSync(
  join(dir, 'vm.yaml'),
  `name: vm
kernel: real
keys: { certs: [${fixtures.signingKeyDer}] }
steps:
  - boot: {}
  - load-module: { path: ${fixtures.modulesDir}/failover.ko, expect: allowed }
`,
);

realTest('snapshot, then restore with the key trusted; a changed byte or another key is refused', async (t) => {
  const s = await heki(['snapshot', 'vm.yaml', '--out', 'vm.snap', '--json'], dir);
  t.is(s.code, 0, s.err);
  const j = JSON.parse(s.out) as { scenario: { passed: boolean }; snapshot: { file: string; bytes: number; sha256: string; keyId: string; publicKey: string } };
  t.true(j.scenario.passed);
  t.deepEqual(Object.keys(j.snapshot), ['file', 'bytes', 'sha256', 'keyId', 'publicKey']);
  t.is(j.snapshot.file, join(dir, 'vm.snap'));
  t.is(readFileSync(j.snapshot.file).length, j.snapshot.bytes);
  t.true(existsSync(join(dir, 'vm.snap.pub.json')));

  const r = await heki(['restore', 'vm.snap', '--trust', 'vm.snap.pub.json', '--json'], dir);
  t.is(r.code, 0, r.err);
  const restored = (JSON.parse(r.out) as { restored: Record<string, unknown> }).restored;
  t.like(restored, {
    vm: 'vm0',
    pins: { cr0: '0x10000', cr4: '0x300800' },
    platformPinned: true,
    modules: ['failover'],
    bootEnded: true,
    guestRuns: true,
    textWriteDenied: true,
  });

  const bytes = readFileSync(join(dir, 'vm.snap'));
  bytes[bytes.length >> 1]! ^= 1;
  writeFileSync(join(dir, 'bad.snap'), bytes);
  const bad = await heki(['restore', 'bad.snap', '--trust', 'vm.snap.pub.json'], dir);
  t.is(bad.code, 1);
  t.regex(
    bad.err,
    /^heki restore: checking bad\.snap \([\d,]+ bytes\) and loading its kernel into a fresh VM\.\.\.\nheki restore: bad\.snap refused \(digest\): section \w+: SHA-256 [0-9a-f]{64} differs from the signed [0-9a-f]{64}: the image was modified after it was signed\n$/,
  );

  writeFileSync(join(dir, 'other.pub.json'), formatPublicKeyFile(generateEd25519KeyPair().publicKey, 'vmm'));
  const other = await heki(['restore', 'vm.snap', '--trust', 'other.pub.json', '--json'], dir);
  t.is(other.code, 1);
  t.like(JSON.parse(other.out), { restored: null, error: { kind: 'untrusted-key' } });

  const attacks = await heki(['restore', 'vm.snap', '--trust', 'vm.snap.pub.json', '--attacks', 'clear-cr4-smep', 'write-kernel-text', '--json'], dir);
  t.is(attacks.code, 0, attacks.err);
  const a = JSON.parse(attacks.out) as { total: number; stopped: number; attacks: Array<{ name: string; stopped: boolean }> };
  t.is(a.total, 2);
  t.is(a.stopped, 2);
});

realTest("snapshot with the operator's vmm key; a failing scenario writes nothing", async (t) => {
  const key = generateEd25519KeyPair();
  writeFileSync(join(dir, 'vmm.secret.json'), formatSecretKeyFile(key, 'vmm'));
  writeFileSync(join(dir, 'vmm.pub.json'), formatPublicKeyFile(key.publicKey, 'vmm'));
  const s = await heki(['snapshot', 'vm.yaml', '--out', 'own.snap', '--key', 'vmm.secret.json'], dir);
  t.is(s.code, 0, s.err);
  t.regex(s.out, /wrote .*own\.snap: \d+ bytes, SHA-256 [0-9a-f]{64}, signed by vmm key [0-9a-f]{16}\n$/);
  t.false(existsSync(join(dir, 'own.snap.pub.json')), 'the operator has the public key already');
  t.is((await heki(['restore', 'own.snap', '--trust', 'vmm.pub.json'], dir)).code, 0);

  writeFileSync(join(dir, 'fails.yaml'), `name: fails\nkernel: real\nsteps:\n  - boot: {}\n  - write: { addr: "_stext+0x10", bytes: "90", expect: allowed }\n`);
  const f = await heki(['snapshot', 'fails.yaml', '--out', 'fails.snap'], dir);
  t.is(f.code, 1);
  t.regex(f.err, /a step did not hold: no snapshot written/);
  t.false(existsSync(join(dir, 'fails.snap')));
});

test('usage errors: exit 2, the problem named', async (t) => {
  const noOut = await heki(['snapshot', 'vm.yaml'], dir);
  t.is(noOut.code, 2);
  t.regex(noOut.err, /--out <file> is required/);
  const noTrust = await heki(['restore', 'vm.snap'], dir);
  t.is(noTrust.code, 2);
  t.regex(noTrust.err, /--trust <vmm\.pub\.json> is required/);
  const names = await heki(['restore', 'vm.snap', '--trust', 'x', 'clear-cr0-wp'], dir);
  t.is(names.code, 2);
  t.regex(names.err, /attack names follow --attacks/);
  writeFileSync(join(dir, 'signing.pub.json'), formatPublicKeyFile(generateEd25519KeyPair().publicKey, 'module-signing'));
  writeFileSync(join(dir, 'x.snap'), 'not a snapshot');
  const role = await heki(['restore', 'x.snap', '--trust', 'signing.pub.json'], dir);
  t.is(role.code, 2);
  t.regex(role.err, /has role module-signing; snapshots are signed by vmm keys/);
  const missing = await heki(['restore', 'nope.snap', '--trust', 'signing.pub.json'], dir);
  t.is(missing.code, 2);
  t.regex(missing.err, /nope\.snap: cannot read: no such file/);
});

needsFixtures(test)('a file that is not a snapshot of this format: exit 2, the version or the field named', async (t) => {
  const key = generateEd25519KeyPair();
  writeFileSync(join(dir, 'fmt.pub.json'), formatPublicKeyFile(key.publicKey, 'vmm'));
  const restore = async (name: string, bytes: Uint8Array) => {
    writeFileSync(join(dir, name), bytes);
    return heki(['restore', name, '--trust', 'fmt.pub.json', '--json'], dir);
  };
  const junk = await restore('junk.snap', new TextEncoder().encode('not a snapshot, but long enough'));
  t.is(junk.code, 2);
  t.like(JSON.parse(junk.out), { restored: null, error: { kind: 'malformed', message: 'no "HEKIVMI1" magic: not a heki VM state image' } });
  // A version 1 snapshot (node:v8 sections): its header is all that is read, and it names the version.
  const v1 = encodeVmImage({ kind: 'migration', vm: 'vm0', vmId: 'ab'.repeat(16) }, [], vmImageSigner(key));
  const at = Buffer.from(v1).indexOf('"version":2');
  v1[at + '"version":'.length] = '1'.charCodeAt(0);
  const old = await restore('v1.snap', v1);
  t.is(old.code, 2);
  t.regex((JSON.parse(old.out) as { error: { message: string } }).error.message, /^header version 1 is not 2: version 1 images hold node:v8 structured clones/);
  // Signed by the trusted key, but its platform section is not of its schema: the field is named.
  const section = (data: unknown) => new TextEncoder().encode(JSON.stringify({ section: 'platform', version: 2, data }));
  const signed = encodeVmImage(
    { kind: 'migration', vm: 'vm0', vmId: 'ab'.repeat(16) },
    [
      { name: 'platform', bytes: section({ version: 2, memoryBytes: 4096 }) },
      { name: 'guest', bytes: new TextEncoder().encode('{}') },
    ],
    vmImageSigner(key),
  );
  const field = await restore('field.snap', signed);
  t.is(field.code, 2);
  t.like(JSON.parse(field.out), {
    restored: null,
    error: { kind: 'malformed', message: 'platform section: data.memoryBytes must be a hex integer string ("0x1f")' },
  });
});
