/**
 * `heki manifest` run in-process: it writes a manifest the verifier's loader accepts with the
 * vendor's public key, refuses a module-signing key, and names missing inputs (exit 2).
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CliCommand, CliIo } from '../../cli/command.ts';
import { keygenCommand } from '../../cli/commands/keygen.ts';
import { manifestCommand } from '../../cli/commands/manifest.ts';
import { COMMANDS } from '../../cli/main.ts';
import { loadPublicKeyFile } from '../../tools/key-files.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { loadManifest } from '../../verifier-vm/manifest.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

async function run(cmd: CliCommand, argv: string[], cwd: string): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd };
  const code = await cmd.run(argv, io);
  return { code, out, err };
}

function tempDir(t: { teardown(f: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'heki-manifest-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('heki lists the manifest command', (t) => {
  t.true(COMMANDS.some((c) => c.name === 'manifest'));
});

test('missing flags and a wrong key role are usage errors (exit 2)', async (t) => {
  const dir = tempDir(t);
  const noOut = await run(manifestCommand, ['--vmlinuz', 'v', '--system-map', 'm', '--key', 'k'], dir);
  t.is(noOut.code, 2);
  t.regex(noOut.err, /missing --out <file>/);
  t.regex(noOut.err, /usage: heki manifest/);
  const stray = await run(manifestCommand, ['extra'], dir);
  t.is(stray.code, 2);
  t.is((await run(keygenCommand, ['--out', 'keys', '--name', 'mod'], dir)).code, 0);
  const wrongRole = await run(manifestCommand, ['--vmlinuz', 'v', '--system-map', 'm', '--key', 'keys/mod.secret.json', '--out', 'o.json'], dir);
  t.is(wrongRole.code, 2);
  t.regex(wrongRole.err, /has role module-signing; manifests need a kernel-vendor key \('heki keygen --role kernel-vendor'\)/);
  const noKey = await run(manifestCommand, ['--vmlinuz', 'v', '--system-map', 'm', '--key', 'nope.json', '--out', 'o.json'], dir);
  t.is(noKey.code, 2);
  t.regex(noKey.err, /nope\.json/);
});

test('a missing vmlinuz is named (exit 2)', async (t) => {
  const dir = tempDir(t);
  t.is((await run(keygenCommand, ['--out', 'keys', '--name', 'vendor', '--role', 'kernel-vendor'], dir)).code, 0);
  const r = await run(
    manifestCommand,
    ['--vmlinuz', 'missing/vmlinuz', '--system-map', 'missing/System.map', '--key', 'keys/vendor.secret.json', '--out', 'o.json'],
    dir,
  );
  t.is(r.code, 2);
  t.regex(r.err, /vmlinuz not found at .*missing\/vmlinuz/);
});

needsFixtures(test)('a missing System.map is named (exit 2)', async (t) => {
  const dir = tempDir(t);
  t.is((await run(keygenCommand, ['--out', 'keys', '--name', 'vendor', '--role', 'kernel-vendor'], dir)).code, 0);
  const r = await run(
    manifestCommand,
    ['--vmlinuz', fixtures.vmlinuz, '--system-map', 'nowhere/System.map', '--key', 'keys/vendor.secret.json', '--out', 'o.json'],
    dir,
  );
  t.is(r.code, 2);
  t.regex(r.err, /System\.map not found at .*nowhere\/System\.map/);
});

needsFixtures(test)('heki manifest writes a manifest the vendor key verifies', async (t) => {
  const dir = tempDir(t);
  t.is((await run(keygenCommand, ['--out', 'keys', '--name', 'vendor', '--role', 'kernel-vendor'], dir)).code, 0);
  const t0 = performance.now();
  const r = await run(
    manifestCommand,
    ['--vmlinuz', fixtures.vmlinuz, '--system-map', fixtures.systemMap, '--key', 'keys/vendor.secret.json', '--out', 'kernel.manifest.json'],
    dir,
  );
  t.log(`heki manifest took ${((performance.now() - t0) / 1000).toFixed(1)} s (decompression included)`);
  t.is(r.code, 0, r.err);
  t.regex(r.out, /linux-6\.1\.0-56-amd64, 40521 ftrace sites, 6299 jump entries, 10503 exports; signed by kernel-vendor key [0-9a-f]{16}/);
  const pub = loadPublicKeyFile(join(dir, 'keys/vendor.pub.json'));
  if (!pub.ok) throw new Error(pub.error);
  const ring = Keyring.fromData({ ed25519: [pub.value], certificates: [], revoked: { ed25519KeyIds: [], x509Sha256: [] } });
  if (!ring.ok) throw new Error(ring.error);
  const m = loadManifest(readFileSync(join(dir, 'kernel.manifest.json'), 'utf8'), ring.value);
  t.true(m.ok, m.ok ? '' : m.error);
  if (m.ok) {
    t.is(m.value.body.kernel, 'linux-6.1.0-56-amd64');
    t.is(m.value.mcountSites.size, 40521);
  }
});
