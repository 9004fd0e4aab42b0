/**
 * Attack: a "reboot" the guest performs on its own, without the VMM resetting the vCPUs, to
 * get out from under its pins and locks: rewrite CR0 and CR4 to their RESET values, jump to
 * the reset vector, run heki_late_init again asking for nothing pinned and text writable, end
 * boot again, write the reset register without its reset bit, write it from user mode, and
 * ask for an unpin.
 *
 * Expected stop: every step refused where it lands: #GP (cr-pin) for the CR writes, #PF for the
 * fetch at the reset vector, -KVM_EINVAL for a pin of nothing, -KVM_EPERM for the immutable
 * text and the second end of boot, nothing at all for RST_CNT without RST_CPU, #GP
 * (privileged) for `out` at CPL 3. Afterwards every pin, every EPT lock, the platform pins and
 * the verifier's state are what boot left, and no lifecycle event happened: only a VMM reset
 * clears them.
 */
import { gva } from '../../shared/addr.ts';
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { HC, KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { RESET_CONTROL_PORT, RST_CNT } from '../../shared/platform-io.ts';
import { encodePageList } from '../../shared/page-list.ts';
import { physToVirt } from '../../guest/kernel/layout.ts';

needsFixtures(test)('a guest-side reboot that does not reset the vCPUs changes nothing', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const cpu = m.kernel!.cpu;
  const before = m.vmm.core.saveState();
  if (!before.ok) throw new Error(before.error.message);
  const verifierBefore = await m.link.exportVm('vm0');

  const cr0 = cpu.writeCr(0, CR0.CD | CR0.NW | CR0.ET);
  t.true(!cr0.ok && cr0.fault.kind === 'fault' && cr0.fault.cause === 'cr-pin');
  const cr4 = cpu.writeCr(4, 0n);
  t.true(!cr4.ok && cr4.fault.kind === 'fault' && cr4.fault.cause === 'cr-pin');
  const vector = cpu.fetch(gva(0xfffffff0n), 16);
  t.true(!vector.ok && vector.fault.kind === 'fault' && vector.fault.vector === 'PF');
  t.is(await cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, 0n, 0n), -KVM_STATUS.KVM_EINVAL, 'there is no unpin: a pin of nothing is malformed');
  t.is(await cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 0n), 0, 'asking for fewer pins removes nothing');
  // heki_late_init again, with the kernel text writable.
  const b = m.image.boundaries;
  const textPa = b._stext - 0xffff_ffff_8000_0000n;
  const list = m.kernel!.scratch;
  t.true(list.write(0, encodePageList([{ pa: textPa, epa: textPa + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE }], 0n)));
  t.is(await cpu.vmcall(HC.PROTECT_MEMORY, list.pa), -KVM_STATUS.KVM_EPERM);
  t.is(await cpu.vmcall(HC.HEKI_END_BOOT), -KVM_STATUS.KVM_EPERM, 'boot ended once');
  t.true(cpu.out(RESET_CONTROL_PORT, RST_CNT.SYS_RST).ok, 'RST_CNT without RST_CPU resets nothing');
  cpu.setCpl(3);
  const user = cpu.out(RESET_CONTROL_PORT, RST_CNT.SYS_RST | RST_CNT.RST_CPU);
  cpu.setCpl(0);
  t.true(!user.ok && user.fault.kind === 'fault' && user.fault.cause === 'privileged');
  // The attacker's own writes to the text through the direct map: still the EPT.
  const alias = cpu.write(gva(physToVirt(textPa) + 0x10n), Uint8Array.of(0xcc));
  t.false(alias.ok);

  const after = m.vmm.core.saveState();
  if (!after.ok) throw new Error(after.error.message);
  t.deepEqual(after.value.pins, before.value.pins);
  t.deepEqual(after.value.ept, before.value.ept);
  t.deepEqual(after.value.msrFilter, before.value.msrFilter);
  t.deepEqual(after.value.crFilter, before.value.crFilter);
  t.deepEqual(after.value.auth, before.value.auth);
  t.true(m.vmm.platformPinned);
  t.deepEqual(await m.link.exportVm('vm0'), verifierBefore);
  t.is(m.vmm.pendingSystemEvent, undefined);
  t.is(m.vmm.core.stopped, undefined);
  t.is(m.vmm.log.byReason('system-event').length, 0);
  t.is(m.audit.records().filter((x) => x['event'] === 'lifecycle').length, 0);
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');
});
