/**
 * Every fixture module loads on the real kernel with its real PKCS#7 signature, and again
 * after Ed25519 re-signing; loaded, its text is RX and not writable and its data not
 * executable; unloaded, nothing of it stays executable.
 */
import test, { type ExecutionContext } from 'ava';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixtures, needsFixtures, readFixtureModule } from '../helpers/fixtures.ts';
import { bootRealMachine, eptOf } from '../helpers/real-machine.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { signModuleFile } from '../../tools/sign-module.ts';
import { formatPublicKeyFile } from '../../tools/key-files.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';

const realTest = needsFixtures(test);
const ALL = ['crc7', 'cordic', 'irqbypass', 'kvm', 'kvm_intel', 'failover', 'net_failover', 'virtio_ring', 'virtio', 'virtio_net'];

async function loadAll(t: ExecutionContext, m: SimulatedMachine, dir: string): Promise<void> {
  for (const f of ['crc7', 'cordic', 'kvm-intel', 'virtio_net']) {
    const r = await m.loadModule(join(dir, `${f}.ko`));
    t.is(r.outcome, 'allowed', `${f}: ${r.reason}`);
  }
}

function checkPermissions(t: ExecutionContext, m: SimulatedMachine): void {
  const k = m.kernel!;
  t.deepEqual([...k.modules.loaded.keys()].sort(), [...ALL].sort());
  for (const mod of k.modules.loaded.values()) {
    t.is(mod.init, undefined, `${mod.name}: its init layout was freed once its init returned`);
    for (const g of mod.image.groups) {
      if (g.part === 'init') continue; // freed: unmapped, the memory back in the module area
      const perms = eptOf(m, g.start) & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE);
      if (g.group === 'text') t.is(perms, EPT_R | EPT_XS | EPT_IMMUTABLE, `${mod.name} text`);
      else if (g.group === 'rw') t.is(perms, EPT_R | EPT_W, `${mod.name} data`);
      else t.is(perms, EPT_R | EPT_IMMUTABLE, `${mod.name} ${g.group}`);
    }
  }
}

realTest('all ten fixture modules load with their PKCS#7 signatures; text RX, data NX', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  await loadAll(t, m, fixtures.modulesDir);
  checkPermissions(t, m);
  const kvm = m.kernel!.modules.loaded.get('kvm')!;
  const text = kvm.image.groups.find((g) => g.group === 'text')!;
  const data = kvm.image.groups.find((g) => g.group === 'rw')!;
  t.is((await m.write(`0x${text.start.toString(16)}`, Uint8Array.of(0xcc), 'kernel')).outcome, 'denied', 'module text is not writable');
  t.is((await m.exec(`0x${data.start.toString(16)}`, 'kernel')).outcome, 'denied', 'module data is not executable');
  t.is((await m.exec(`0x${text.start.toString(16)}`, 'kernel')).outcome, 'allowed', 'module text executes');
  const verdicts = m.audit.records().filter((r) => r['kind'] === 'module-load');
  t.is(verdicts.length, 10);
  t.true(verdicts.every((r) => r['ok'] === true && String(r['reason']).includes('module-pkcs7')));

  // Unload in dependency order: nothing stays executable.
  const textFrame = m.vmm.core.vcpus[0]!.translateForCore(text.start)!;
  for (const name of ['kvm_intel', 'kvm', 'irqbypass']) t.is((await m.unloadModule(name)).outcome, 'allowed');
  t.is(m.vmm.core.ept.get(textFrame) & (EPT_XS | EPT_IMMUTABLE), 0, 'the unloaded text frame is data again');
  t.is((await m.unloadModule('virtio')).outcome, 'error', 'virtio_net still uses virtio');
});

realTest('the same modules load after Ed25519 re-signing, and not without a trusted key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-ed25519-'));
  const key = generateEd25519KeyPair();
  for (const f of readdirSync(fixtures.modulesDir)) {
    const signed = signModuleFile(readFixtureModule(f.replace(/\.ko$/, '')), key);
    if (!signed.ok) throw new Error(signed.error);
    writeFileSync(join(dir, f), signed.value);
  }
  writeFileSync(join(dir, 'key.pub.json'), formatPublicKeyFile(key.publicKey, 'module-signing'));
  const m = await bootRealMachine({ keys: { pubkeys: [join(dir, 'key.pub.json')], certs: [], revoked: [] } });
  t.teardown(() => m.dispose());
  await loadAll(t, m, dir);
  checkPermissions(t, m);
  t.true(
    m.audit
      .records()
      .filter((r) => r['kind'] === 'module-load')
      .every((r) => String(r['reason']).includes('module-signature')),
  );

  const other = await bootRealMachine({ keys: { pubkeys: [], certs: [], revoked: [] } });
  t.teardown(() => other.dispose());
  const r = await other.loadModule(join(fixtures.modulesDir, 'crc7.ko'));
  t.is(r.outcome, 'denied');
  t.regex(r.reason, /refused module crc7/);
});
