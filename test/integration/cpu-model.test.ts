/**
 * The CPU model on the real kernel, end to end: the VMM owns it; the booted guest learnt it
 * through CPUID only (boot_cpu_data, command line); the verifier was configured with it by
 * the VMM; it survives migration with the CPUs online; CPU hotplug raises the count within
 * the model's possible CPUs; save-memory writes the kernel's bytes as the guest holds them.
 */
import { gva } from '../../shared/addr.ts';
import test, { type TestFn } from 'ava';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { restoreMachine, snapshotMachine } from '../../machine/machine.ts';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { detectCpu } from '../../guest/kernel/cpu-detect.ts';

const realTest = needsFixtures(test.serial as unknown as TestFn);
const HOTPLUG = join(repoRoot(), 'test', 'fixtures', 'cpu-models', 'qemu64-up-hotplug');

realTest('epyc-smp2: the guest booted on the VMM model, the verifier has it, and a migrated VM keeps it', async (t) => {
  const m = await bootRealMachine({ cpu: 'epyc-smp2' });
  t.teardown(() => m.dispose());
  const epyc = BUILTIN_CPU_MODELS.get('epyc-smp2')!;
  const { name: _n, ...view } = epyc;
  t.deepEqual(m.kernel!.bootCpuData, view, 'boot_cpu_data from CPUID is the model');
  t.deepEqual(m.host!.verifierInit.vms, { vm0: { cpuModel: epyc } }, 'the VMM configured the verifier with it');
  t.is(m.vmm.cpus.length, 2);
  t.is((await m.cpuOnline()).outcome, 'error', 'both possible CPUs are online already');

  // kexec: the same VMM boots the new kernel on the same CPU; the verifier keeps the model.
  t.is((await m.kexec({})).outcome, 'allowed');
  t.deepEqual(m.kernel!.bootCpuData, view, "the kexec'd kernel detected the same model");
  t.is(m.vmm.cpuModel, epyc);

  const snap = await snapshotMachine(m);
  if (!snap.ok) return t.fail(snap.error);
  const r = await restoreMachine(snap.value, { trust: m.vmm.identity.publicKey, image: m.image });
  if (!r.ok) return t.fail(r.error.message);
  t.teardown(() => r.value.dispose());
  t.is(r.value.vmm.cpuModel.name, 'epyc-smp2');
  t.deepEqual(r.value.kernel!.bootCpuData, view);
  const seen = detectCpu(r.value.vmm.bootCpu);
  t.true(seen.ok && seen.value.family === 23 && seen.value.vendorId === 'AuthenticAMD', 'the destination vCPU answers CPUID for the same model');
});

realTest('CPU hotplug on a 1-present/2-possible model: the count rises once, reaches the guest and survives migration', async (t) => {
  const m = await bootRealMachine({ cpu: HOTPLUG });
  t.teardown(() => m.dispose());
  t.is(m.kernel!.bootCpuData.presentCpus, 1);
  t.is(m.kernel!.bootCpuData.possibleCpus, 2);
  const up = await m.cpuOnline();
  t.is(up.outcome, 'allowed', up.reason);
  t.regex(up.reason, /CPU 1 online \(2 of 2 possible\)/);
  t.is(m.vmm.onlineCpus, 2);
  t.is(m.vmm.bootCpu.cpuid(0x40000101).ebx, 2, 'CPUID reports two CPUs present now');
  const again = await m.cpuOnline();
  t.is(again.outcome, 'error');
  t.regex(again.reason, /all 2 possible CPUs of model .* are online/);
  t.true(m.audit.records().some((r) => r['event'] === 'lifecycle' && r['type'] === 'cpu-online' && r['online'] === 2));

  t.is((await m.hibernate()).outcome, 'allowed');
  t.is((await m.resume()).outcome, 'allowed');
  t.is(m.vmm.onlineCpus, 2, 'a resumed VM has both CPUs online');
  t.is((await m.migrate()).outcome, 'allowed');
  t.is(m.vmm.onlineCpus, 2, 'the destination VMM has both CPUs online');
  t.is(m.vmm.bootCpu.cpuid(0x40000101).ebx, 2);
  t.is(m.vmm.cpuModel.name, HOTPLUG);
});

realTest('save-memory writes the bytes the guest holds at a kernel virtual address', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const dir = mkdtempSync(join(tmpdir(), 'heki-save-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const out = join(dir, 'text.bin');
  const r = await m.saveMemory('_stext', 8192, out);
  t.is(r.outcome, 'allowed', r.reason);
  const want = m.kernel!.cpu.read(gva(m.image.boundaries._stext), 8192);
  if (!want.ok) return t.fail('cannot read _stext');
  t.deepEqual(new Uint8Array(readFileSync(out)), want.value);
  const unmapped = await m.saveMemory('0xffffc90000000000', 16, join(dir, 'x.bin'));
  t.is(unmapped.outcome, 'error');
  t.regex(unmapped.reason, /is not mapped by the guest's page tables/);
});
