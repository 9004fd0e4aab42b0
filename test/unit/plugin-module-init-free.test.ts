/**
 * module-end-state's `module-init-free` (do_init_module() once the module's init returned),
 * through the verifier engine with the real fixture modules: it releases every init section
 * and seals ro_after_init, the module's record forgets its init layout (so a patch there has
 * no site and a later load may overlap that memory), and it is allowed once per load, only
 * for a loaded module.
 */
import test from 'ava';
import { MEM_ATTR } from '../../shared/abi.ts';
import { needsFixtures } from '../helpers/fixtures.ts';
import { fixtureModulesInDependencyOrder } from './module-fixture-chain.ts';
import { Guest, VM, initFree, load, loadAll, manifest, sectionsOf, unload, verifier } from './module-end-state-setup.ts';

const fixtureTest = needsFixtures(test);
const RELEASE = MEM_ATTR.READ | MEM_ATTR.WRITE;
const SEAL = MEM_ATTR.READ | MEM_ATTR.IMMUTABLE;

fixtureTest('the end of init releases every init section, seals ro_after_init, and the record drops the init layout', async (t) => {
  const v = await verifier();
  const { images } = await loadAll(v);
  const { img } = images.get('kvm')!;
  const before = v.vmState(VM).modules.get('kvm')!;
  const initGroups = img.groups.filter((g) => g.part === 'init');
  const inInit = (a: bigint): boolean => initGroups.some((g) => a >= g.start && a < g.end);
  t.true(initGroups.length > 0, 'kvm has an init layout');
  t.true(before.ranges.some((r) => inInit(r.start)) && before.textRanges.some((r) => inInit(r.start)), 'while kvm is COMING its init layout is recorded');

  const verdict = initFree(v, 'kvm');
  t.true(verdict.ok, verdict.reason);
  t.regex(verdict.reason, /module-end-state: module kvm: init returned; \d+ init sections \(\d+ pages\) released, 2 ro_after_init sections sealed/);
  const want = [
    ...img.sections.filter((s) => s.part === 'init').map((s) => ({ shndx: s.shndx, permissions: RELEASE })),
    ...img.sections.filter((s) => s.part === 'core' && s.group === 'ro_after_init' && s.size > 0).map((s) => ({ shndx: s.shndx, permissions: SEAL })),
  ];
  t.deepEqual(
    [...verdict.grants!].sort((a, b) => a.shndx - b.shndx),
    want.sort((a, b) => a.shndx - b.shndx),
  );

  const after = v.vmState(VM).modules.get('kvm')!;
  t.is(after.init, undefined);
  t.false(
    after.ranges.some((r) => inInit(r.start)),
    'no range of the freed init layout',
  );
  t.false(after.textRanges.some((r) => inInit(r.start)));
  t.false([...after.textPageHashes.keys()].some(inInit));
  t.false([...after.jumpEntries.keys()].some(inInit), 'no jump entry in freed init text');
  t.false([...(after.smpLocks ?? [])].some(inInit));
  t.is(after.jumpEntries.size, [...before.jumpEntries.keys()].filter((a) => !inInit(a)).length, 'every core jump entry stays');
  const roAfterInit = img.groups.filter((g) => g.part === 'core' && g.group === 'ro_after_init');
  for (const g of roAfterInit) t.is(after.ranges.find((r) => r.start === g.start)?.permissions, SEAL, 'ro_after_init is sealed');
  t.deepEqual([...after.exports], [...before.exports]);

  t.like(initFree(v, 'kvm'), { ok: false, reason: 'module-end-state: module kvm: its init memory is already freed' }, 'once per load');
  t.like(initFree(v, 'nope'), { ok: false, reason: 'module-end-state: module nope is not loaded' });
});

fixtureTest("a module may be loaded into another's freed init memory, and not before it is freed", async (t) => {
  const v = await verifier();
  const guest = new Guest(await manifest());
  const mods = fixtureModulesInDependencyOrder();
  const failover = mods.find((m) => m.file === 'failover')!;
  const fimg = guest.build(failover);
  t.true(load(v, failover.name, failover.bytes, sectionsOf(fimg)).ok);
  // cordic's core where failover's init layout is, as the real kernel's vmalloc would place it.
  guest.base = fimg.groups.find((g) => g.part === 'init')!.start;
  const cordic = mods.find((m) => m.file === 'cordic')!;
  const cimg = guest.build(cordic);
  const early = load(v, cordic.name, cordic.bytes, sectionsOf(cimg));
  t.false(early.ok);
  t.regex(early.reason, /module cordic: section \S+ \[0x[0-9a-f]+, 0x[0-9a-f]+\) overlaps module failover/);

  t.true(initFree(v, 'failover').ok);
  const late = load(v, cordic.name, cordic.bytes, sectionsOf(cimg));
  t.true(late.ok, late.reason);
  // Unload and reload after init was freed: the load records a fresh init layout.
  t.true(unload(v, 'failover').ok);
  guest.base = fimg.groups.find((g) => g.part === 'core')!.start; // its old core, free again
  const reload = load(v, failover.name, failover.bytes, sectionsOf(guest.build(failover)));
  t.true(reload.ok, reload.reason);
  t.truthy(v.vmState(VM).modules.get('failover')!.init, 'a reloaded module has its init layout until its init returns');
});
