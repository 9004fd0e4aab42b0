/**
 * Module names with `-` and `_` are one name, as kmod treats them (libkmod's
 * modname_normalize turns every `-` into `_`; KBUILD_MODNAME always has `_`): Debian's
 * `dm-crypt.ko` says `depends=dm-mod` of a module whose `.modinfo` name is `dm_mod`. Here
 * virtio_net's `depends=` is rewritten to name `net-failover` (re-signed with an Ed25519 test
 * key), and loading, dependency checks and unloading by either spelling must all agree.
 */
import test from 'ava';
import { copyFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures, needsFixtures, readFixtureModule } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { signModuleFile } from '../../tools/sign-module.ts';
import { formatPublicKeyFile } from '../../tools/key-files.ts';
import { normalizeModuleName } from '../../shared/module/index.ts';

const realTest = needsFixtures(test);

test('normalizeModuleName turns dashes into underscores, as modname_normalize does', (t) => {
  t.is(normalizeModuleName('dm-mod'), 'dm_mod');
  t.is(normalizeModuleName('kvm-intel'), 'kvm_intel');
  t.is(normalizeModuleName('net_failover'), 'net_failover');
});

/** A copy of the fixture modules where virtio_net depends on `net-failover` (spelled with a dash). */
function dashedFixtures(): { dir: string; keyFile: string } {
  const dir = mkdtempSync(join(tmpdir(), 'heki-dash-'));
  const key = generateEd25519KeyPair();
  const file = readFixtureModule('virtio_net');
  const text = Buffer.from(file);
  const from = Buffer.from('depends=virtio_ring,virtio,net_failover\0');
  const at = text.indexOf(from);
  if (at < 0) throw new Error('virtio_net.ko has not the expected depends= entry');
  text.write('depends=virtio_ring,virtio,net-failover\0', at);
  const signed = signModuleFile(new Uint8Array(text), key);
  if (!signed.ok) throw new Error(signed.error);
  writeFileSync(join(dir, 'virtio_net.ko'), signed.value);
  for (const f of ['net_failover', 'failover', 'virtio', 'virtio_ring']) copyFileSync(join(fixtures.modulesDir, `${f}.ko`), join(dir, `${f}.ko`));
  const keyFile = join(dir, 'key.pub.json');
  writeFileSync(keyFile, formatPublicKeyFile(key.publicKey, 'module-signing'));
  return { dir, keyFile };
}

realTest('a depends= entry spelled with a dash loads, holds and unloads the module spelled with underscores', async (t) => {
  const { dir, keyFile } = dashedFixtures();
  const m = await bootRealMachine({ keys: { pubkeys: [keyFile], certs: [fixtures.signingKeyDer], revoked: [] } });
  t.teardown(() => m.dispose());
  const load = await m.loadModule(join(dir, 'virtio_net.ko'));
  t.is(load.outcome, 'allowed', load.reason);
  t.deepEqual([...m.kernel!.modules.loaded.keys()].sort(), ['failover', 'net_failover', 'virtio', 'virtio_net', 'virtio_ring']);
  // The dependency holds under either spelling: net_failover is in use by virtio_net.
  const busy = await m.unloadModule('net-failover');
  t.is(busy.outcome, 'error');
  t.regex(busy.reason, /net_failover is in use by virtio_net/);
  t.is((await m.unloadModule('virtio-net')).outcome, 'allowed', 'rmmod virtio-net unloads virtio_net');
  const r = await m.unloadModule('net-failover');
  t.is(r.outcome, 'allowed', r.reason);
  t.false(m.kernel!.modules.loaded.has('net_failover'));
});
