/**
 * The signing commands of `heki` (keygen, sign, verify-module, audit verify), run in-process
 * through their CliCommand objects with an in-memory io: exit codes, messages and the exact
 * JSON shape scripts rely on.
 */
import test from 'ava';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliCommand, CliIo } from '../../cli/command.ts';
import { keygenCommand } from '../../cli/commands/keygen.ts';
import { signCommand } from '../../cli/commands/sign.ts';
import { verifyModuleCommand } from '../../cli/commands/verify-module.ts';
import { auditCommand } from '../../cli/commands/audit.ts';
import { AuditLog } from '../../hypervisor/audit/audit-log.ts';
import { PKEY_ID_HEKI_ED25519, parseModuleSignature } from '../../shared/module-signature.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

interface Run {
  code: number;
  out: string;
  err: string;
}

async function run(cmd: CliCommand, argv: string[], cwd: string): Promise<Run> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd };
  const code = await cmd.run(argv, io);
  return { code, out, err };
}

/** A temp dir with a fake module (an ELF-looking image) and a fresh key pair. */
async function setup(t: { teardown(f: () => void): void }): Promise<{ dir: string; keyId: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'heki-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = new Uint8Array(20_000).map((_, i) => (i * 17) & 0xff);
  image.set([0x7f, 0x45, 0x4c, 0x46], 0);
  writeFileSync(join(dir, 'm.ko'), image);
  const k = await run(keygenCommand, ['--out', 'keys'], dir);
  if (k.code !== 0) throw new Error(k.err);
  const keyId = /key id ([0-9a-f]{16})/.exec(k.out)?.[1];
  if (keyId === undefined) throw new Error(`no key id in: ${k.out}`);
  return { dir, keyId };
}

test('keygen writes both files, prints the key id, refuses to overwrite, rejects bad roles', async (t) => {
  const { dir, keyId } = await setup(t);
  const pub = JSON.parse(readFileSync(join(dir, 'keys/heki-signing-key.pub.json'), 'utf8')) as Record<string, unknown>;
  t.is(pub['keyId'], keyId);
  t.is(pub['role'], 'module-signing');
  const again = await run(keygenCommand, ['--out', 'keys'], dir);
  t.is(again.code, 2);
  t.regex(again.err, /already exists/);
  const vendor = await run(keygenCommand, ['--out', 'keys', '--role', 'kernel-vendor', '--name', 'vendor'], dir);
  t.is(vendor.code, 0);
  t.regex(vendor.out, /kernel-vendor/);
  const badRole = await run(keygenCommand, ['--out', 'keys', '--role', 'root'], dir);
  t.is(badRole.code, 2);
  t.regex(badRole.err, /unknown role 'root'/);
  t.regex(badRole.err, /usage: heki keygen/);
  const noOut = await run(keygenCommand, [], dir);
  t.is(noOut.code, 2);
  t.regex(noOut.err, /missing --out/);
});

test('keygen + sign + verify-module round trip, text and JSON', async (t) => {
  const { dir, keyId } = await setup(t);
  const s = await run(signCommand, ['m.ko', '--key', 'keys/heki-signing-key.secret.json', '--out', 'm.signed.ko'], dir);
  t.is(s.code, 0, s.err);
  t.regex(s.out, new RegExp(keyId));
  const parsed = parseModuleSignature(new Uint8Array(readFileSync(join(dir, 'm.signed.ko'))));
  t.true(parsed.ok);
  if (parsed.ok) t.is(parsed.value.idType, PKEY_ID_HEKI_ED25519);

  const v = await run(verifyModuleCommand, ['m.signed.ko', '--pubkey', 'keys/heki-signing-key.pub.json'], dir);
  t.is(v.code, 0, v.out + v.err);
  t.regex(v.out, /accepted \(ed25519\)/);

  const j = await run(verifyModuleCommand, ['m.signed.ko', '--pubkey', 'keys/heki-signing-key.pub.json', '--json'], dir);
  t.is(j.code, 0);
  t.is(j.out.trim().split('\n').length, 1, 'exactly one JSON line');
  const obj = JSON.parse(j.out) as Record<string, unknown>;
  t.deepEqual(Object.keys(obj).slice(0, 4), ['file', 'accepted', 'scheme', 'reason']);
  t.is(obj['file'], 'm.signed.ko');
  t.is(obj['accepted'], true);
  t.is(obj['scheme'], 'ed25519');
  t.is(typeof obj['reason'], 'string');
  t.is(obj['keyId'], keyId);

  // The tweetnacl implementation agrees.
  t.is((await run(verifyModuleCommand, ['m.signed.ko', '--pubkey', 'keys/heki-signing-key.pub.json', '--impl', 'tweetnacl'], dir)).code, 0);

  // Re-signing replaces the trailer instead of stacking a second one.
  const again = await run(signCommand, ['m.signed.ko', '--key', 'keys/heki-signing-key.secret.json', '--out', 'm.signed.ko'], dir);
  t.is(again.code, 0);
  t.is(readFileSync(join(dir, 'm.signed.ko')).length, 20_000 + 8 + 64 + 12 + 28);
});

test('unsigned module, wrong key, revoked key, flipped byte: exit 1 naming the reason', async (t) => {
  const { dir, keyId } = await setup(t);
  await run(keygenCommand, ['--out', 'keys', '--name', 'other'], dir);
  await run(signCommand, ['m.ko', '--key', 'keys/heki-signing-key.secret.json', '--out', 's.ko'], dir);

  const unsigned = await run(verifyModuleCommand, ['m.ko', '--pubkey', 'keys/heki-signing-key.pub.json', '--json'], dir);
  t.is(unsigned.code, 1);
  t.deepEqual(JSON.parse(unsigned.out), { file: 'm.ko', accepted: false, scheme: 'none', reason: 'module is not signed' });

  const wrong = await run(verifyModuleCommand, ['s.ko', '--pubkey', 'keys/other.pub.json'], dir);
  t.is(wrong.code, 1);
  t.regex(wrong.out, new RegExp(`DENIED \\(ed25519\\): unknown key ${keyId}`));

  writeFileSync(join(dir, 'revoked.txt'), `# compromised\ned25519:${keyId}\n`);
  const revoked = await run(verifyModuleCommand, ['s.ko', '--pubkey', 'keys/heki-signing-key.pub.json', '--revoked', 'revoked.txt', '--json'], dir);
  t.is(revoked.code, 1);
  t.regex((JSON.parse(revoked.out) as { reason: string }).reason, new RegExp(`key ${keyId} is revoked`));

  const bytes = readFileSync(join(dir, 's.ko'));
  bytes[5000]! ^= 0x01;
  writeFileSync(join(dir, 'flipped.ko'), bytes);
  const flipped = await run(verifyModuleCommand, ['flipped.ko', '--pubkey', 'keys/heki-signing-key.pub.json'], dir);
  t.is(flipped.code, 1);
  t.regex(flipped.out, /signature mismatch/);
});

test('bad usage and unreadable or malformed inputs exit 2 with a message naming the problem', async (t) => {
  const { dir } = await setup(t);
  const cases: [CliCommand, string[], RegExp][] = [
    [verifyModuleCommand, ['m.ko', '--bogus'], /bogus/],
    [verifyModuleCommand, [], /missing <file.ko>/],
    [verifyModuleCommand, ['a.ko', 'b.ko'], /unexpected argument 'b.ko'/],
    [verifyModuleCommand, ['missing.ko'], /missing\.ko: cannot read/],
    [verifyModuleCommand, ['m.ko', '--pubkey', 'm.ko'], /m\.ko: a NUL byte at byte \d+: not a text file/],
    [verifyModuleCommand, ['m.ko', '--cert', 'keys/heki-signing-key.pub.json'], /not an X.509 certificate/],
    [verifyModuleCommand, ['m.ko', '--impl', 'fast'], /unknown --impl 'fast'/],
    [signCommand, ['m.ko', '--key', 'keys/heki-signing-key.secret.json'], /missing --out/],
    [signCommand, ['m.ko', '--key', 'keys/heki-signing-key.pub.json', '--out', 'x.ko'], /type must be "heki-ed25519-secret-key"/],
    [signCommand, ['nope.ko', '--key', 'keys/heki-signing-key.secret.json', '--out', 'x.ko'], /nope\.ko: cannot read/],
    [auditCommand, [], /missing sub-command/],
    [auditCommand, ['show', 'x'], /unknown sub-command 'show'/],
    [auditCommand, ['verify', 'nope.log'], /nope\.log: cannot read/],
    [auditCommand, ['verify', 'x.log', '--head', '3:zz'], /--head must be/],
  ];
  for (const [cmd, argv, re] of cases) {
    const r = await run(cmd, argv, dir);
    t.is(r.code, 2, `${cmd.name} ${argv.join(' ')}`);
    t.regex(r.err, re, `${cmd.name} ${argv.join(' ')}`);
    t.is(r.out, '');
  }
  await run(keygenCommand, ['--out', 'keys', '--role', 'kernel-vendor', '--name', 'vendor'], dir);
  const vendorSign = await run(signCommand, ['m.ko', '--key', 'keys/vendor.secret.json', '--out', 'x.ko'], dir);
  t.is(vendorSign.code, 2);
  t.regex(vendorSign.err, /role kernel-vendor; modules need a module-signing key/);
  const help = await run(verifyModuleCommand, ['--help'], dir);
  t.is(help.code, 0);
  t.regex(help.out, /usage: heki verify-module/);
});

needsFixtures(test)('verify-module on real Debian modules with --cert; sign replaces their PKCS#7 trailer', async (t) => {
  const { dir, keyId } = await setup(t);
  copyFileSync(join(fixtures.modulesDir, 'virtio.ko'), join(dir, 'virtio.ko'));
  const v = await run(verifyModuleCommand, ['virtio.ko', '--cert', fixtures.signingKeyDer, '--json'], dir);
  t.is(v.code, 0, v.out + v.err);
  const obj = JSON.parse(v.out) as Record<string, unknown>;
  t.is(obj['scheme'], 'pkcs7');
  t.is(obj['accepted'], true);
  t.regex(String(obj['reason']), /Build time autogenerated kernel key/);

  const noCert = await run(verifyModuleCommand, ['virtio.ko', '--json'], dir);
  t.is(noCert.code, 1);
  t.regex(String((JSON.parse(noCert.out) as Record<string, unknown>)['reason']), /unknown signer/);

  const s = await run(signCommand, ['virtio.ko', '--key', 'keys/heki-signing-key.secret.json', '--out', 'virtio.heki.ko'], dir);
  t.is(s.code, 0);
  const both = await run(verifyModuleCommand, ['virtio.heki.ko', '--pubkey', 'keys/heki-signing-key.pub.json', '--cert', fixtures.signingKeyDer], dir);
  t.is(both.code, 0);
  t.regex(both.out, new RegExp(`ed25519.*${keyId}`));
  const size = readFileSync(join(dir, 'virtio.heki.ko')).length;
  t.is(size, readFileSync(join(dir, 'virtio.ko')).length - 681 + 8 + 64);
});

test('audit verify: intact log exit 0 with the count; tampered log exit 1 with the line number', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'audit.jsonl');
  const log = AuditLog.open({ path });
  if (!log.ok) throw new Error(log.error);
  for (let i = 0; i < 4; i++) log.value.append({ event: 'module-load', module: `m${i}`, accepted: true });
  const head = log.value.head();
  log.value.close();

  const ok = await run(auditCommand, ['verify', 'audit.jsonl'], dir);
  t.is(ok.code, 0);
  t.regex(ok.out, /intact, 4 records/);
  t.is((await run(auditCommand, ['verify', 'audit.jsonl', '--head', `${head.seq}:${head.hash}`], dir)).code, 0);

  const lines = readFileSync(path, 'utf8').split('\n');
  lines[1] = lines[1]!.replace('"accepted":true', '"accepted":false');
  writeFileSync(join(dir, 'tampered.jsonl'), lines.join('\n'));
  const bad = await run(auditCommand, ['verify', 'tampered.jsonl'], dir);
  t.is(bad.code, 1);
  t.regex(bad.out, /TAMPERED at line 3/);

  writeFileSync(join(dir, 'cut.jsonl'), readFileSync(path, 'utf8').split('\n').slice(0, 3).join('\n') + '\n');
  const cut = await run(auditCommand, ['verify', 'cut.jsonl', '--head', `${head.seq}:${head.hash}`], dir);
  t.is(cut.code, 1);
  t.regex(cut.out, /line 4: .*truncated/);
});
