/**
 * The VM's whole configuration survives every lifecycle step in every order of two: reboot,
 * kexec, hibernate+resume and migrate, 4 x 4 = 16 ordered pairs. One machine walks a de
 * Bruijn sequence of the four steps (17 steps hold each ordered pair once, back to back), so
 * the 16 pairs cost 17 steps, not 32 and 16 boots. After each pair: the VMM's configuration
 * (RAM and disk size, vCPUs, protected-memory mode, everything VmmConfig holds) is the one the
 * machine was created with, the verifier runs the same plugin module with the same
 * configuration (and still denies what it denied), and the kernel's text is still
 * write-protected. A migration once gave the destination a 2,048-sector disk, and a
 * hibernation after it was refused ("the disk has 2048").
 */
import test, { type ExecutionContext, type TestFn } from 'ava';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';
import type { StepOutcome } from '../../machine/machine-api.ts';
import type { VmSettings } from '../../hypervisor/vmm/vmm.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);
const PLUGIN = fileURLToPath(new URL('../fixtures/replay/refuse-module.ts', import.meta.url));

type Step = 'reboot' | 'kexec' | 'hibernate+resume' | 'migrate';
const STEPS: readonly Step[] = ['reboot', 'kexec', 'hibernate+resume', 'migrate'];
/** B(4, 2) = 0010203112132233, made linear by repeating its first step: every ordered pair once. */
const WALK: readonly Step[] = [...'00102031121322330'].map((d) => STEPS[Number(d)]!);

async function run(m: SimulatedMachine, step: Step): Promise<StepOutcome> {
  switch (step) {
    case 'reboot':
      return m.reboot();
    case 'kexec':
      return m.kexec({});
    case 'hibernate+resume': {
      const h = await m.hibernate();
      return h.outcome === 'allowed' ? m.resume() : h;
    }
    case 'migrate':
      return m.migrate();
  }
}

let machine: SimulatedMachine | undefined;
let settings: VmSettings | undefined;

async function booted(): Promise<SimulatedMachine> {
  if (machine) return machine;
  machine = await bootRealMachine({ memoryBytes: 512n << 20n, pluginModules: [PLUGIN], pluginConfig: { 'refuse-module': { name: 'crc7' } } });
  settings = machine.vmm.settings;
  return machine;
}

test.after.always(async () => {
  await machine?.dispose();
});

/** The checks after each pair: the configuration and the protection. */
async function configurationAndProtectionHold(t: ExecutionContext, m: SimulatedMachine): Promise<void> {
  t.deepEqual(m.vmm.settings, settings, 'the VMM configuration: RAM and disk size, vCPUs, protected-memory mode, ...');
  t.is(m.vmm.devices.disk.sectors, settings!.disk!.sectors, 'the disk keeps its size');
  t.is(m.vmm.core.memory.size, 512n << 20n);
  const init = m.host!.verifierInit;
  t.deepEqual(init.pluginModules, [PLUGIN]);
  t.deepEqual(init.pluginConfig, { 'refuse-module': { name: 'crc7' } });
  const info = await m.link.info();
  t.true(info.ok && info.plugins.some((p) => p.name === 'refuse-module'), 'the verifier runs the plugin module');
  const mark = m.verdictMark();
  t.is((await m.loadModule(join(fixtures.modulesDir, 'crc7.ko'))).outcome, 'denied');
  t.true(
    m.deniedSince(mark).some((r) => r.includes('crc7 is not on the allow list')),
    'the plugin, with its configuration, still decides',
  );
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied', 'a write to kernel text is still stopped');
}

for (let i = 1; i < WALK.length; i++) {
  const [first, second] = [WALK[i - 1]!, WALK[i]!];
  realTest(`${first} then ${second}: the configuration survives and the VM stays protected`, async (t) => {
    t.timeout(600_000);
    const m = await booted();
    // The walk's first step runs in the first pair; each later pair's first step is the
    // previous pair's second, already checked.
    if (i === 1) {
      const r = await run(m, first);
      t.is(r.outcome, 'allowed', `${first}: ${r.reason}`);
    }
    const r = await run(m, second);
    t.is(r.outcome, 'allowed', `${second} after ${first}: ${r.reason}`);
    await configurationAndProtectionHold(t, m);
  });
}

test('the walk holds every ordered pair of the four steps once', (t) => {
  const pairs = WALK.slice(1).map((s, i) => `${WALK[i]} -> ${s}`);
  t.is(new Set(pairs).size, 16);
  t.is(pairs.length, 16);
});
