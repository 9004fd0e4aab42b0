/**
 * Live migration on the real kernel (docs/lifecycle.md): the snapshot a source VMM signs is
 * restored into a fresh VM (a new VMM and verifier) that enforces exactly what the source did:
 * the same pins, filters, EPT attributes and immutable ranges, the same authenticated records,
 * the same verifier state; the guest kernel runs on. Then the whole attack catalogue runs
 * against migrated VMs (checks/attacks.ts with a machine that is booted and migrated first).
 */
import test, { type TestFn } from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { createMachineDetailed, restoreMachine, snapshotMachine, type MachineConfig } from '../../machine/machine.ts';
import { listAttacks, runAttacks } from '../../checks/attacks.ts';
import { ATTACKS } from '../../guest/attacks/catalogue.ts';
import { err, ok } from '../../shared/result.ts';
import { fixtures } from '../helpers/fixtures.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { verifyAuditChain } from '../../hypervisor/audit/audit-log.ts';
import type { ExportedVmState } from '../../verifier-vm/vm-state.ts';

// Serial: each test runs a real kernel; several at once on one main thread make the
// verifier's answers late on a loaded machine.
const realTest = needsFixtures(test.serial as unknown as TestFn);

realTest("a migrated VM has the source's protection state, verifier state and running kernel", async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  t.is((await m.loadModule(`${fixtures.modulesDir}/failover.ko`)).outcome, 'allowed');
  t.is((await m.staticCall('__SCK__might_resched', '__cond_resched')).outcome, 'allowed');
  t.is((await m.ftrace('enable', 'failover_*')).outcome, 'allowed');
  const before = m.vmm.core.saveState();
  if (!before.ok) throw new Error(before.error.message);
  const verifierBefore = (await m.link.exportVm('vm0')) as ExportedVmState;
  const sourceLink = m.link;
  const sourceVmId = m.vmm.identity.vmId;

  const r = await m.migrate();
  t.is(r.outcome, 'allowed', r.reason);
  t.not(m.link, sourceLink, 'a new verifier serves the destination');
  t.is(m.vmm.identity.vmId, sourceVmId, 'the VM keeps its identity');
  const after = m.vmm.core.saveState();
  if (!after.ok) throw new Error(after.error.message);
  t.deepEqual(after.value.pins, { cr0: CR0.WP, cr4: CR4.SMEP | CR4.SMAP | CR4.UMIP });
  t.deepEqual(after.value.pins, before.value.pins);
  t.deepEqual(after.value.msrFilter, before.value.msrFilter);
  t.deepEqual(after.value.crFilter, before.value.crFilter);
  t.deepEqual(after.value.hekiExitMasks, before.value.hekiExitMasks);
  t.deepEqual(after.value.ept, before.value.ept, 'every EPT attribute, immutable ranges included');
  t.deepEqual(after.value.auth, before.value.auth, 'the authenticator records: boot ended, the module, the trusted code map');
  t.deepEqual(after.value.vcpus, before.value.vcpus);
  t.true(m.vmm.platformPinned);
  const verifierAfter = (await m.link.exportVm('vm0')) as ExportedVmState;
  t.deepEqual([...verifierAfter.modules.keys()], [...verifierBefore.modules.keys()]);
  t.is(verifierAfter.bootVerified, true);
  t.deepEqual(verifierAfter.pluginState, verifierBefore.pluginState);

  // The guest runs on, and the new verifier decides from the state it took back.
  t.is((await m.ftrace('disable', 'failover_*')).outcome, 'allowed');
  t.is((await m.unloadModule('failover')).outcome, 'allowed');
  t.is((await m.staticCall('__SCK__might_resched', '__cond_resched+4')).outcome, 'denied');
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');
  const lifecycle = m.audit
    .records()
    .filter((x) => x['event'] === 'lifecycle')
    .map((x) => `${String(x['type'])}:${String(x['result'])}`);
  t.deepEqual(lifecycle, ['migrate-out:snapshot', 'migrate-in:started', 'migrate-in:restored']);
  const restore = m.audit.records().find((x) => x['kind'] === 'restore-state');
  t.like(restore, { ok: true, applied: true });
  t.true(
    verifyAuditChain(
      m.audit
        .records()
        .map((x) => JSON.stringify(x))
        .join('\n'),
    ).ok,
    'one unbroken chain across the migration',
  );
});

realTest('a protected-memory VM is not migrated: the VMM cannot copy its private pages', async (t) => {
  const m = await bootRealMachine({ protectedMemory: true });
  t.teardown(() => m.dispose());
  const r = await m.migrate();
  t.is(r.outcome, 'denied');
  t.regex(r.reason, /migration: host read of .* refused: frame .* is private guest memory/);
  t.is(m.vmm.core.stopped, undefined, 'the source runs on');
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');
});

realTest('the attack catalogue against migrated VMs: every attack is stopped', async (t) => {
  t.timeout(900_000);
  // One source per machine configuration the attacks ask for (keys, verifier faults): booted,
  // then snapshotted by its VMM; each attack runs on a fresh VM restored from that snapshot
  // (a new VMM and verifier), as a migration's destination is. A protected-memory VM cannot
  // be migrated (the test above), so its one attack is not run here.
  const names = ATTACKS.filter((a) => !a.needs?.protectedMemory).map((a) => a.name);
  t.is(names.length, listAttacks().length - ATTACKS.filter((a) => a.needs?.protectedMemory).length);
  const sources = new Map<string, Promise<{ bytes: Uint8Array; trust: Uint8Array }>>();
  const source = async (config: MachineConfig): Promise<{ bytes: Uint8Array; trust: Uint8Array }> => {
    const built = await createMachineDetailed(config);
    if (!built.ok) throw new Error(built.error.message);
    const m = built.value;
    try {
      const boot = await m.boot();
      if (boot.outcome !== 'allowed') throw new Error(`boot: ${boot.reason}`);
      const snap = await snapshotMachine(m);
      if (!snap.ok) throw new Error(snap.error);
      return { bytes: snap.value, trust: m.vmm.identity.publicKey };
    } finally {
      await m.dispose();
    }
  };
  const run = await runAttacks(names, {
    machine: async (config) => {
      const key = JSON.stringify({ keys: config.keys, faults: config.faultInjection === true });
      let src = sources.get(key);
      if (!src) sources.set(key, (src = source(config)));
      const s = await src;
      const r = await restoreMachine(s.bytes, {
        trust: s.trust,
        ...(config.image ? { image: config.image } : {}),
        ...(config.faultInjection ? { faultInjection: true } : {}),
        ...(config.verifierSpare === false ? { verifierSpare: false } : {}),
      });
      return r.ok ? ok(r.value) : err(`${r.error.kind}: ${r.error.message}`);
    },
  });
  if (!run.ok) throw new Error(run.error.message);
  const missed = run.value.attacks.filter((a) => !a.stopped);
  t.deepEqual(
    missed.map((a) => `${a.name}: ${a.stop}`),
    [],
  );
  t.is(run.value.stopped, names.length);
  t.is(sources.size, 3, 'the default machine, one with a revoked key, one with verifier faults');
  t.log(`${run.value.stopped} of ${names.length} attacks stopped on VMs restored from their source's snapshot`);
});
