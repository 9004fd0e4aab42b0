/**
 * Runtime patching where 6.1 leaves init memory alone or goes through ftrace, on the real
 * kernel:
 * - a static key whose only jump label is in the built-in `.exit.text` (freed init memory)
 *   enables and patches nothing (jump_label_can_update skips init entries);
 * - a kprobe on an ftrace site is armed through ftrace (arm_kprobe_ftrace): the site calls
 *   `ftrace_regs_caller`, an ftrace patch; one inside the site is refused (-EILSEQ);
 * - "ftrace all" leaves a module's init text alone (ftrace_free_mem after do_init_module).
 * Each still leaves the kernel's text write-protected.
 */
import { gva } from '../../shared/addr.ts';
import test, { type TestFn } from 'ava';
import { join } from 'node:path';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { disposeForkBases, forkRealMachine } from '../helpers/real-machine.ts';
import { NOP5, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);
// Each test works on its own fork of one booted machine (none tests boot itself).
test.after.always(disposeForkBases);
const hex = (a: bigint): string => `0x${a.toString(16)}`;

function bytesAt(m: SimulatedMachine, va: bigint, n: number): number[] {
  const r = m.vmm.bootCpu.read(gva(va), n);
  if (!r.ok) throw new Error(`cannot read ${hex(va)}`);
  return [...r.value];
}

async function kernelTextStillProtected(t: import('ava').ExecutionContext, m: SimulatedMachine): Promise<void> {
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied', 'a write to kernel text is still stopped');
}

realTest('a static key whose only site is in .exit.text enables and patches nothing, as 6.1 does', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const exit = m.image.sectionByName('.exit.text')!;
  const inExit = (a: bigint): boolean => a >= exit.vaddr && a < exit.vaddr + BigInt(exit.size);
  const byKey = new Map<bigint, bigint[]>();
  for (const e of m.image.jumpEntries) byKey.set(e.key, [...(byKey.get(e.key) ?? []), e.site]);
  const key = [...byKey].find(([, sites]) => sites.every(inExit))?.[0];
  if (key === undefined) return t.fail('the fixture kernel has a key with only .exit.text sites');
  const r = await m.jumpLabel('enable', hex(key));
  t.is(r.outcome, 'allowed', r.reason);
  t.regex(r.reason, /0 of 1 jump label\(s\) patched/);
  t.is((await m.jumpLabel('disable', hex(key))).outcome, 'allowed');
  await kernelTextStillProtected(t, m);
});

realTest('a kprobe on an ftrace site is armed through ftrace (a call to ftrace_regs_caller) and disarmed to the NOP', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const func = m.image.systemMap.address('vfs_read')!;
  const site = m.image.mcountSites.map((s) => s.address).find((a) => a >= func && a < func + 16n);
  if (site === undefined) return t.fail('vfs_read has an ftrace site');
  const regs = m.image.systemMap.address('ftrace_regs_caller')!;
  const caller = m.image.systemMap.address('ftrace_caller')!;
  const inside = await m.kprobe(hex(site + 1n), 'install');
  t.is(inside.outcome, 'denied');
  t.regex(inside.reason, /inside the ftrace site .*-EILSEQ/);

  const on = await m.kprobe(hex(site), 'install');
  t.is(on.outcome, 'allowed', on.reason);
  t.deepEqual(bytesAt(m, site, 5), [...encodeCall32(site, regs)], 'the site calls ftrace_regs_caller');
  t.true(m.kernel!.kprobes.installed().includes(site));
  const audit = m.audit
    .records()
    .filter((x) => x['kind'] === 'text-patch')
    .at(-1);
  t.deepEqual(audit?.['plugins'], ['ftrace'], 'authenticated as an ftrace patch: the ftrace plugin decided it, not the kprobe policy');
  // Tracing the function too keeps the regs trampoline; untracing it keeps the probe.
  t.is((await m.ftrace('enable', 'vfs_read')).outcome, 'allowed');
  t.deepEqual(bytesAt(m, site, 5), [...encodeCall32(site, regs)]);
  t.is((await m.kprobe(hex(site), 'remove')).outcome, 'allowed');
  t.deepEqual(bytesAt(m, site, 5), [...encodeCall32(site, caller)], 'traced only: back to ftrace_caller');
  t.is((await m.ftrace('disable', 'vfs_read')).outcome, 'allowed');
  t.deepEqual(bytesAt(m, site, 5), [...NOP5]);
  await kernelTextStillProtected(t, m);
});

realTest('"ftrace all" leaves the sites in a module\'s init text alone, as 6.1 freed them', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  t.is((await m.loadModule(join(fixtures.modulesDir, 'virtio_net.ko'))).outcome, 'allowed');
  const mod = m.kernel!.modules.loaded.get('virtio_net')!;
  t.is(mod.init, undefined, 'its init layout was freed once its init returned');
  const init = mod.image.groups.filter((g) => g.part === 'init');
  const inInit = (a: bigint): boolean => init.some((g) => a >= g.start && a < g.end);
  const initSites = mod.image.mcountSites.filter(inInit);
  t.true(initSites.length > 0, 'virtio_net has ftrace sites in its init text');
  t.false(
    initSites.some((s) => m.kernel!.ftrace.siteCovering(s) !== undefined),
    'ftrace_free_mem dropped them',
  );
  const r = await m.ftrace('enable', 'all');
  t.is(r.outcome, 'allowed', r.reason);
  const core = mod.image.mcountSites.find((a) => !inInit(a))!;
  t.is(bytesAt(m, core, 1)[0], 0xe8, 'a core site is traced');
  t.is((await m.ftrace('disable', 'all')).outcome, 'allowed');
  // The freed init memory is unmapped (virtio_net loaded last: nothing took it yet); patching
  // it anyway is test/security/attack-ftrace-freed-module-init-site.test.ts.
  t.is(m.vmm.core.vcpus[0]!.translateForCore(initSites[0]!), undefined);
  await kernelTextStillProtected(t, m);
});
