/**
 * Forking a booted machine (machine/machine-fork.ts, docs/fork.md): a fork is in exactly the
 * state of its parent and of a cold boot of the same configuration (digests of memory, EPT,
 * vCPUs, pins and filters, authenticator, verifier, VMM and guest kernel state); what one
 * fork does is invisible to its parent and to its siblings; and a fork enforces as a booted
 * machine does, its verifier's spare included.
 */
import test, { type TestFn } from 'ava';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { bootBase, createMachineDetailed, type MachineBase, type MachineConfig } from '../../machine/machine.ts';
import { machineDigest } from '../../machine/machine-digest.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);

const CONFIG: MachineConfig = { kernel: 'real', keys: { pubkeys: [], certs: [fixtures.signingKeyDer], revoked: [] }, faultInjection: true };

let base: MachineBase | undefined;
async function theBase(): Promise<MachineBase> {
  if (!base) {
    const b = await bootBase(CONFIG, { warm: 2 });
    if (!b.ok) throw new Error(b.error.message);
    base = b.value;
  }
  return base;
}
test.after.always(async () => base?.dispose());

async function fork(t: { teardown(f: () => Promise<void>): void }) {
  const f = await (await theBase()).fork();
  if (!f.ok) throw new Error(f.error);
  t.teardown(() => f.value.dispose());
  return f.value;
}

realTest('a fork is indistinguishable from its parent and from a cold boot of the same configuration', async (t) => {
  const b = await theBase();
  const f = await fork(t);
  const cold = await bootRealMachine({ faultInjection: true });
  t.teardown(() => cold.dispose());
  const [df, dp, dc] = await Promise.all([machineDigest(f), machineDigest(b.machine), machineDigest(cold)]);
  t.deepEqual(df, dp, 'fork and parent');
  t.deepEqual(df, dc, 'fork and a cold boot');
  t.not(f.vmm, b.machine.vmm);
  t.not(f.link, b.machine.link, 'the fork has its own verifier');
  t.not(f.vmm.identity.vmId, b.machine.vmm.identity.vmId, 'and its own VM id');
  t.true(f.vmm.core.memory.sharedPages() > 1000, 'the booted memory is shared, not copied');
  const first = f.audit.since(0)[0]!;
  t.is(first['type'], 'fork', "the fork's audit log starts by naming its parent's head");
  t.is(first['parentAuditSeq'], b.machine.audit.head().seq);
});

realTest('what a fork writes, loads and patches is invisible to its parent and to a sibling', async (t) => {
  const b = await theBase();
  const a = await fork(t);
  const sibling = await fork(t);
  const before = await machineDigest(b.machine);
  const jiffies = a.resolve('jiffies_64');
  if (!jiffies.ok) throw new Error(jiffies.error);
  t.is((await a.write('jiffies_64', Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8), 'kernel')).outcome, 'allowed');
  t.is((await a.loadModule(`${fixtures.modulesDir}/crc7.ko`)).outcome, 'allowed');
  t.is((await a.ftrace('enable', 'vfs_read')).outcome, 'allowed');
  const afterA = await machineDigest(a);
  for (const k of ['memory', 'ept', 'authenticator', 'verifier', 'guest'] as const) t.not(afterA[k], before[k], `the fork's ${k} changed`);
  t.deepEqual(await machineDigest(b.machine), before, 'the parent is as it was');
  t.deepEqual(await machineDigest(sibling), before, 'the sibling is as the parent');
  const read = await sibling.read('jiffies_64', 8, 'kernel');
  t.not(read.reason, 'read 0102030405060708');
  t.is(sibling.kernel!.modules.resolve('crc7'), undefined, 'the module is not loaded in the sibling');
  t.is((await sibling.unloadModule('crc7')).outcome, 'error');
});

realTest('a fork enforces as a booted machine: kernel text stays immutable, a bad static call target is refused, a signed module loads', async (t) => {
  const f = await fork(t);
  t.is((await f.write('_stext+0x10', Uint8Array.of(0xcc), 'kernel')).outcome, 'denied');
  t.is((await f.staticCall('__SCK__might_resched', '__cond_resched+4')).outcome, 'denied');
  const m = await f.loadModule(`${fixtures.modulesDir}/crc7.ko`);
  t.is(m.outcome, 'allowed', "a signed module still loads: the verifier took the parent's boot");
});

realTest("the fork's spare verifier took the imported state too: after the active one crashes, the VM's state is still known", async (t) => {
  const f = await fork(t);
  t.true(await f.link.standby(), 'a warm spare is ready');
  t.true(await f.link.injectFault('crash'));
  // The crash fails this request closed; the spare takes over with the imported state.
  t.is((await f.ftrace('enable', 'vfs_read')).outcome, 'denied');
  t.is(f.link.stats.restarts, 1);
  t.is((await f.ftrace('enable', 'vfs_write')).outcome, 'allowed', 'the spare knows the boot was verified and the kernel manifest');
  t.is((await f.write('_stext+0x10', Uint8Array.of(0xcc), 'kernel')).outcome, 'denied');
});

realTest("the fork's verifier refuses an import for a VM it already holds, and a malformed state", async (t) => {
  const f = await fork(t);
  const section = await f.link.exportVmSection('vm0');
  if (!section) return t.fail('no verifier section');
  t.regex((await f.link.importVm('vm0', section)) ?? '', /already holds state/);
  const fresh = await createMachineDetailed(CONFIG);
  if (!fresh.ok) throw new Error(fresh.error.message);
  t.teardown(() => fresh.value.dispose());
  // The section's JSON with one field changed, as bytes again.
  const edited = (edit: (data: Record<string, unknown>) => void): Uint8Array => {
    const j = JSON.parse(new TextDecoder().decode(section)) as { data: Record<string, unknown> };
    edit(j.data);
    return new TextEncoder().encode(JSON.stringify(j));
  };
  t.regex(
    (await fresh.value.link.importVm(
      'vm1',
      edited((d) => void (d['bootVerified'] = 'yes')),
    )) ?? '',
    /bootVerified/,
  );
  t.regex(
    (await fresh.value.link.importVm(
      'vm2',
      edited((d) => void (d['manifest'] = 'not a manifest')),
    )) ?? '',
    /kernel manifest/,
  );
});
