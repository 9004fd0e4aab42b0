/**
 * Reboot on the real kernel (docs/lifecycle.md): the guest writes the reset control register,
 * the VMM accepts the `system-event` exit, parks the VM and resets it: pins, EPT locks,
 * filters, the authenticator's records, the verifier's per-VM state and RAM are cleared, only
 * then, and only by the VMM. The new boot establishes its protections again, and the audit
 * log records the reset.
 */
import test, { type TestFn } from 'ava';
import { needsFixtures, fixtures } from '../helpers/fixtures.ts';
import { bootRealMachine, eptOf } from '../helpers/real-machine.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { EPT_IMMUTABLE, EPT_R, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import type { ExportedVmState } from '../../verifier-vm/vm-state.ts';

// Serial: each test runs a real kernel; several at once on one main thread make the
// verifier's answers late on a loaded machine.
const realTest = needsFixtures(test.serial as unknown as TestFn);

realTest('a reboot: the VMM clears everything at the reset, the new boot locks itself again', async (t) => {
  const m = await bootRealMachine({ keys: { pubkeys: [], certs: [fixtures.signingKeyDer], revoked: [] } });
  t.teardown(() => m.dispose());
  t.is((await m.loadModule(`${fixtures.modulesDir}/crc7.ko`)).outcome, 'allowed');
  t.is(((await m.link.exportVm('vm0')) as ExportedVmState).modules.size, 1);
  const k = m.kernel!;

  // The guest asks; nothing changes until the VMM carries the reset out.
  const r = k.lifecycle.reboot();
  t.true(!r.ok && r.fault.kind === 'stopped');
  t.like(m.vmm.pendingSystemEvent, { type: 'reset' });
  t.is(m.vmm.core.pins.get(4), CR4.SMEP | CR4.SMAP | CR4.UMIP);
  t.true(m.vmm.platformPinned);

  const out = await m.carryOutSystemEvent();
  t.is(out?.kind, 'rebooted');
  t.is(m.kernel, undefined, 'the machine forgot the old kernel at the reset');
  t.is(m.vmm.core.pins.get(0), 0n);
  t.is(m.vmm.core.pins.get(4), 0n);
  t.deepEqual(m.vmm.core.ept.entries(), []);
  t.false(m.vmm.platformPinned);
  t.is(m.vmm.core.msrFilter.ranges.length, 0);
  t.false(m.vmm.core.auth!.bootEnded);
  t.is(m.vmm.core.auth!.modules.size, 0);
  t.is(await m.link.exportVm('vm0'), undefined, 'the verifier forgot the VM');
  t.is(m.vmm.core.vcpus[0]!.readCr(0), CR0.CD | CR0.NW | CR0.ET, 'the vCPU is at RESET');
  t.true(m.vmm.core.memory.residentPages() > 0, 'the boot kernel is loaded again');

  // The new boot.
  const b = await m.boot();
  t.is(b.outcome, 'allowed', b.reason);
  t.is(m.vmm.core.pins.get(0), CR0.WP);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP | CR4.SMAP | CR4.UMIP);
  t.is(eptOf(m, m.image.boundaries._stext) & (EPT_R | EPT_XS | EPT_IMMUTABLE), EPT_R | EPT_XS | EPT_IMMUTABLE);
  t.true(m.vmm.platformPinned);
  t.true(((await m.link.exportVm('vm0')) as ExportedVmState).bootVerified);
  t.is(m.kernel!.modules.loaded.size, 0, "the old kernel's module is gone with it");
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');

  const resets = m.audit.records().filter((x) => x['event'] === 'lifecycle');
  t.is(resets.length, 1);
  t.like(resets[0], { vm: 'vm0', type: 'reset', result: 'rebooted', source: 'RST_CNT (port 0xcf9) = 0x6' });
  const boots = m.audit.records().filter((x) => x['kind'] === 'kernel-text' && x['ok'] === true);
  t.is(boots.length, 2, "each boot's text was verified");
  t.like(m.vmm.log.byReason('system-event')[0], { action: 'resume', exit: { type: 'reset' } });
});

realTest('the reboot step through MachineApi: allowed, and protected again afterwards', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const r = await m.reboot();
  t.is(r.outcome, 'allowed', r.reason);
  t.regex(r.reason, /^reset \(RST_CNT \(port 0xcf9\) = 0x6\): pins, locks, filters, verified records and RAM cleared; .* then booted: /);
  const w = await m.writeCr(4, { clear: CR4.SMEP });
  t.is(w.outcome, 'denied');
  t.is((await m.reboot()).outcome, 'allowed', 'as often as the guest likes');
});

realTest("a VMM policy that refuses resets: the guest's reboot changes nothing", async (t) => {
  const m = await bootRealMachine({ policy: { 'system-event': () => ({ action: 'inject', reason: 'reboots are disabled' }) } });
  t.teardown(() => m.dispose());
  const r = await m.reboot();
  t.is(r.outcome, 'denied');
  t.regex(r.reason, /refused the reset/);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP | CR4.SMAP | CR4.UMIP);
  t.is((await m.writeCr(4, { clear: CR4.SMEP })).outcome, 'denied');
  t.is(m.audit.records().filter((x) => x['event'] === 'lifecycle').length, 0);
});
