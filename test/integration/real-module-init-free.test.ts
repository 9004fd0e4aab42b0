/**
 * Freeing a module's init memory on the real kernel, end to end (do_init_module() after the
 * init function returned): for every module of a dependency chain the hypervisor allows
 * KVM_HC_HEKI_FREE_MODULE_INIT, releases the init frames and seals ro_after_init; the guest
 * frees the init layout and the next module's core takes that memory, as Linux's vmalloc
 * would place it; the verifier's records forget the init layouts. Then the combinations: an
 * unload after init was freed and a reload, and a hibernation and resume after init was freed
 * (the guest, the core's records and the verifier's come back without the init layouts, and
 * the modules still unload and reload). The machine's map shows no freed init section.
 */
import test, { type ExecutionContext, type TestFn } from 'ava';
import { join } from 'node:path';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine, eptOf } from '../helpers/real-machine.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';
import type { ExportedVmState } from '../../verifier-vm/vm-state.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);
/** virtio_net and what modprobe loads before it (its `depends=` first, depth first), in that order. */
const CHAIN = ['virtio_ring', 'virtio', 'failover', 'net_failover', 'virtio_net'];

const initFrees = (m: SimulatedMachine) => m.audit.records().filter((r) => r['event'] === 'verdict' && r['kind'] === 'module-init-free');

/** Every loaded module's init is freed everywhere: guest, core and verifier; ro_after_init is sealed. */
async function assertInitFreed(t: ExecutionContext, m: SimulatedMachine): Promise<void> {
  const k = m.kernel!;
  const verifier = (await m.link.exportVm('vm0')) as ExportedVmState;
  for (const mod of k.modules.loaded.values()) {
    t.is(mod.init, undefined, `${mod.name}: the guest freed its init layout`);
    for (const g of mod.image.groups) {
      if (g.part === 'init') {
        const reused = [...k.modules.loaded.values()].some(
          (o) => o !== mod && o.image.groups.some((h) => h.part === 'core' && g.start < h.end && h.start < g.end),
        );
        t.true(reused || m.vmm.core.vcpus[0]!.translateForCore(g.start) === undefined, `${mod.name}: freed init memory is unmapped, or another module's core`);
        continue;
      }
      const perms = eptOf(m, g.start) & (EPT_R | EPT_W | EPT_XS | EPT_IMMUTABLE);
      if (g.group === 'ro_after_init') t.is(perms, EPT_R | EPT_IMMUTABLE, `${mod.name}: ro_after_init sealed`);
    }
    const rec = m.vmm.core.auth!.modules.get(mod.name)!;
    t.false(
      [...rec.sections!.keys()].some((shndx) => mod.image.sections.find((s) => s.shndx === shndx)?.part === 'init'),
      `${mod.name}: the core's record keeps no init section`,
    );
    t.is(verifier.modules.get(mod.name)?.init, undefined, `${mod.name}: the verifier's record has no init layout`);
  }
}

realTest('a dependency chain: every init is freed and the next core takes the freed init memory', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const r = await m.loadModule(join(fixtures.modulesDir, 'virtio_net.ko'));
  t.is(r.outcome, 'allowed', r.reason);
  const k = m.kernel!;
  t.deepEqual([...k.modules.loaded.keys()], CHAIN);
  t.deepEqual(
    initFrees(m).map((x) => [x['subject'], x['ok'], x['applied']]),
    CHAIN.map((n) => [n, true, true]),
    'one authenticated end of init per module, in load order',
  );
  await assertInitFreed(t, m);
  // vmalloc's lowest fit: failover's init layout was the last allocation; once freed, net_failover's core starts there.
  const failoverInit = k.modules.loaded.get('failover')!.image.groups.find((g) => g.part === 'init')!;
  t.is(k.modules.loaded.get('net_failover')!.core.va, failoverInit.start);
  // The map (heki run --report) shows a module's core only: its freed init memory is not its own.
  const map = m.inspect().modules.find((x) => x.name === 'failover')!;
  t.deepEqual(
    map.sections.map((x) => x.name).filter((n) => n.startsWith('.init')),
    [],
  );
  t.true(map.sections.some((x) => x.name === '.text'));

  // Unload after init was freed, then load again: a fresh init layout, freed again.
  t.is((await m.unloadModule('virtio_net')).outcome, 'allowed');
  t.is((await m.unloadModule('virtio_net')).outcome, 'error', 'gone');
  t.false(m.vmm.core.auth!.modules.has('virtio_net'));
  const again = await m.loadModule(join(fixtures.modulesDir, 'virtio_net.ko'));
  t.is(again.outcome, 'allowed', again.reason);
  t.is(initFrees(m).filter((x) => x['subject'] === 'virtio_net').length, 2);
  await assertInitFreed(t, m);
  // A module whose dependency is in use still is refused; its users first, then it goes.
  t.is((await m.unloadModule('failover')).outcome, 'error');
  for (const n of ['virtio_net', 'net_failover', 'failover', 'virtio', 'virtio_ring']) t.is((await m.unloadModule(n)).outcome, 'allowed', n);
  t.is(m.vmm.core.auth!.modules.size, 0);
});

realTest('hibernate and resume after init was freed: no init layout comes back; the modules unload and reload', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  t.is((await m.loadModule(join(fixtures.modulesDir, 'net_failover.ko'))).outcome, 'allowed');
  t.is((await m.hibernate()).outcome, 'allowed');
  const r = await m.resume();
  t.is(r.outcome, 'allowed', r.reason);
  t.deepEqual([...m.kernel!.modules.loaded.keys()], ['failover', 'net_failover']);
  await assertInitFreed(t, m);
  // The restored guest's ftrace has no site in the freed init text.
  const nf = m.kernel!.modules.loaded.get('net_failover')!;
  const init = nf.image.groups.filter((g) => g.part === 'init');
  const initSites = nf.image.mcountSites.filter((a) => init.some((g) => a >= g.start && a < g.end));
  t.true(initSites.length > 0, 'net_failover has ftrace sites in its init text');
  t.false(
    initSites.some((a) => m.kernel!.ftrace.siteCovering(a) !== undefined),
    'none is an ftrace site after the resume',
  );
  t.is((await m.unloadModule('net_failover')).outcome, 'allowed');
  const again = await m.loadModule(join(fixtures.modulesDir, 'net_failover.ko'));
  t.is(again.outcome, 'allowed', again.reason);
  await assertInitFreed(t, m);
});
