/**
 * Hibernation and resume on the real kernel (docs/lifecycle.md): at S4 the VMM writes a
 * signed image of the whole VM to the VM's disk and the VM is off; on resume the verifier
 * checks the image and takes its own state back, and the VMM re-applies every protection (pins,
 * filters, EPT attributes with the immutable ranges, the authenticator's records) before the
 * guest runs. The guest kernel goes on where it stopped: its module, its traced functions,
 * its JITed program. An image resumes once; a protected-memory VM is not hibernated.
 */
import test, { type TestFn } from 'ava';
import { needsFixtures, fixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { RESUME_MAGIC, RESUME_SECTOR } from '../../hypervisor/vmm/lifecycle/hibernate.ts';
import { generateJitImage } from '../../scenario/steps.ts';
import type { ExportedVmState } from '../../verifier-vm/vm-state.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);

realTest('hibernate, then resume: every protection, the verifier state and the guest come back', async (t) => {
  const m = await bootRealMachine({ keys: { pubkeys: [], certs: [fixtures.signingKeyDer], revoked: [] } });
  t.teardown(() => m.dispose());
  t.is((await m.loadModule(`${fixtures.modulesDir}/failover.ko`)).outcome, 'allowed');
  t.is((await m.ftrace('enable', 'failover_*')).outcome, 'allowed');
  t.is((await m.bpfJit('prog', generateJitImage(200), true)).outcome, 'allowed');
  const before = m.vmm.core.saveState();
  if (!before.ok) throw new Error(before.error.message);
  const verifierBefore = (await m.link.exportVm('vm0')) as ExportedVmState;

  const h = await m.hibernate();
  t.is(h.outcome, 'allowed', h.reason);
  t.is(m.kernel, undefined);
  t.regex(m.vmm.core.stopped ?? '', /^hibernated \(ACPI S4\)/);
  const header = m.vmm.devices.disk.readSectors(RESUME_SECTOR, 1);
  t.true(
    RESUME_MAGIC.every((b, i) => header[i] === b),
    'the image is on the disk',
  );
  t.like(
    m.audit
      .records()
      .filter((x) => x['event'] === 'lifecycle')
      .at(-1),
    { type: 'hibernate', result: 'hibernated' },
  );

  const r = await m.resume();
  t.is(r.outcome, 'allowed', r.reason);
  const after = m.vmm.core.saveState();
  if (!after.ok) throw new Error(after.error.message);
  t.deepEqual(after.value, before.value, 'pins, filters, masks, EPT, shared frames, vCPUs and records: all re-applied');
  t.true(m.vmm.platformPinned);
  const verifierAfter = (await m.link.exportVm('vm0')) as ExportedVmState;
  t.deepEqual(verifierAfter, verifierBefore);
  const restore = m.audit.records().find((x) => x['kind'] === 'restore-state');
  t.like(restore, { ok: true, applied: true, plugins: ['lifecycle'] });

  // The guest goes on where it was.
  t.true(m.kernel!.bpf.programs.has('prog'));
  t.true(m.kernel!.modules.loaded.has('failover'));
  t.is((await m.ftrace('disable', 'failover_*')).outcome, 'allowed');
  t.is((await m.unloadModule('failover')).outcome, 'allowed');
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');
  // The resume signature is gone: the same image resumes once.
  t.false(RESUME_MAGIC.every((b, i) => m.vmm.devices.disk.readSectors(RESUME_SECTOR, 1)[i] === b));
  t.is((await m.hibernate()).outcome, 'allowed');
  t.is((await m.resume()).outcome, 'allowed');
  t.is((await m.resume()).outcome, 'error', 'running: nothing to resume');
});

realTest('a protected-memory VM is not hibernated (the VMM cannot read it); the guest runs on', async (t) => {
  const m = await bootRealMachine({ protectedMemory: true });
  t.teardown(() => m.dispose());
  const h = await m.hibernate();
  t.is(h.outcome, 'denied');
  t.regex(h.reason, /hibernation refused: cannot copy guest memory: snapshot: host read of .* is private guest memory/);
  t.is(m.vmm.core.stopped, undefined);
  t.truthy(m.kernel);
  t.is((await m.writeCr(4, { clear: 1n << 20n })).outcome, 'denied');
  t.like(
    m.audit
      .records()
      .filter((x) => x['event'] === 'lifecycle')
      .at(-1),
    { type: 'hibernate', result: 'refused' },
  );
});

realTest('resume without an image is an error and leaves the VM as it is', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  // A VM that is off without having hibernated: a panic with no crash kernel stops it.
  const p = await m.panic();
  t.is(p.outcome, 'allowed', p.reason);
  t.is(m.kernel, undefined);
  const r = await m.resume();
  t.is(r.outcome, 'error');
  t.regex(r.reason, /no hibernation image at sector 0/);
  t.is(m.vmm.core.pins.get(0), 1n << 16n, 'nothing was reset');
});
