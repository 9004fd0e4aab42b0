/**
 * The real Debian 6.1 kernel on the Hyper-V personality (createMachine({ hypervisor:
 * 'hyperv' })): the guest picks the VSM backend from CPUID, LOCK_REGS pins LVBS's masks, a
 * signed module loads and unloads through VALIDATE_MODULE / UNLOAD_MODULE, and the VM reboots,
 * hibernates and resumes, and migrates, still on Hyper-V with its pins. kexec is refused: the
 * LVBS ABI validates a kexec image but has no call that runs it (docs/hypervisors.md).
 */
import test from 'ava';
import { join } from 'node:path';
import { needsFixtures, fixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { CR0_PIN_MASK } from '../../shared/hv-vsm-abi.ts';
import { CR4 } from '../../shared/x86/cpu.ts';

needsFixtures(test)('boot, module load and unload, reboot, hibernate and resume, migrate on hyperv; kexec refused', async (t) => {
  const m = await bootRealMachine({ hypervisor: 'hyperv' });
  t.teardown(() => m.dispose());
  t.is(m.kernel?.heki.hv.name, 'hyperv-vsm');
  t.is(m.vmm.core.hypervisor, 'hyperv');
  t.is(m.vmm.core.pins.get(0), CR0_PIN_MASK, 'CR0 PE|WP|PG pinned (Heki would pin WP only)');
  t.is(m.vmm.core.pins.get(4) & (CR4.SMEP | CR4.SMAP | CR4.PGE), CR4.SMEP | CR4.SMAP, 'SMEP and SMAP pinned, PGE never');
  const crc7 = join(fixtures.modulesDir, 'crc7.ko');
  t.like(await m.loadModule(crc7), { outcome: 'allowed' });
  t.like(await m.unloadModule('crc7'), { outcome: 'allowed' });
  t.like(await m.reboot(), { outcome: 'allowed' });
  t.is(m.kernel?.heki.hv.name, 'hyperv-vsm', 'the rebooted kernel finds Hyper-V again');
  t.like(await m.loadModule(crc7), { outcome: 'allowed' });
  t.like(await m.hibernate(), { outcome: 'allowed' });
  t.like(await m.resume(), { outcome: 'allowed' });
  t.is(m.vmm.core.pins.get(0), CR0_PIN_MASK);
  const moved = await m.migrate();
  t.like(moved, { outcome: 'allowed' });
  t.is(m.vmm.core.hypervisor, 'hyperv', 'the destination runs on Hyper-V too');
  t.is(m.vmm.core.pins.get(0), CR0_PIN_MASK);
  const k = await m.kexec({});
  t.is(k.outcome, 'denied');
  t.regex(k.reason, /hyperv-vsm backend has no kexec/);
});
