/**
 * The vCPU's CPUID (shared/x86/cpuid.ts, hypervisor/vcpu/vcpu.ts): the VMM's CPU model as
 * architectural leaves and the simulator's paravirtual ones, and the guest's detection
 * (guest/kernel/cpu-detect.ts) reading the same model back, name aside.
 */
import test from 'ava';
import { Vmm } from '../../hypervisor/vmm/vmm.ts';
import { BUILTIN_CPU_MODELS, DEFAULT_CPU_MODEL } from '../../shared/x86/cpu-models-builtin.ts';
import { CPUID_LEAF, decodeSignature, encodeSignature } from '../../shared/x86/cpuid.ts';
import { detectCpu } from '../../guest/kernel/cpu-detect.ts';
import type { CpuModel } from '../../shared/x86/cpu-model.ts';

const vmmOn = (cpu: CpuModel): Vmm => new Vmm({ memoryBytes: 16n << 20n, cpu });
const str = (...w: number[]): string =>
  Buffer.concat(
    w.map((x) => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(x >>> 0);
      return b;
    }),
  ).toString('latin1');

test('leaf 0 gives the vendor string in EBX, EDX, ECX; leaf 1 the SDM signature of each model', (t) => {
  // The signatures real CPUs of these models report: QEMU qemu64 0x60fb1, Skylake client 0x506e3, EPYC (Naples) 0x800f12.
  const want: Record<string, number> = { 'qemu64-up': 0x00060fb1, 'skylake-smp2': 0x000506e3, 'epyc-smp2': 0x00800f12 };
  for (const [name, m] of BUILTIN_CPU_MODELS) {
    const cpu = vmmOn(m).bootCpu;
    const l0 = cpu.cpuid(0, 0);
    t.is(str(l0.ebx, l0.edx, l0.ecx), m.vendorId, name);
    t.is(cpu.cpuid(1).eax, want[name]!, name);
    t.deepEqual(decodeSignature(want[name]!), { family: m.family, model: m.model, stepping: m.stepping }, name);
  }
});

test('the signature uses the extended family from 0xf and the extended model from family 6', (t) => {
  t.is(encodeSignature(0x19, 0x21, 0), 0x00a20f10);
  t.deepEqual(decodeSignature(0x00a20f10), { family: 0x19, model: 0x21, stepping: 0 });
  t.is(encodeSignature(5, 4, 3), 0x543);
});

test('0x80000008 gives MAXPHYADDR and linear-address bits; 0x40000000 is KVM', (t) => {
  const cpu = vmmOn(DEFAULT_CPU_MODEL).bootCpu;
  t.is(cpu.cpuid(CPUID_LEAF.EXT_MAX).eax, 0x80000008);
  t.is(cpu.cpuid(0x80000008).eax, (48 << 8) | 40);
  const kvm = cpu.cpuid(0x40000000);
  t.is(str(kvm.ebx, kvm.ecx, kvm.edx), 'KVMKVMKVM\0\0\0');
  t.deepEqual(cpu.cpuid(0x12345678), { eax: 0, ebx: 0, ecx: 0, edx: 0 });
});

test('the guest detects exactly the VMM model (name aside), command line included, on every vCPU', (t) => {
  const models = [
    ...BUILTIN_CPU_MODELS.values(),
    { ...DEFAULT_CPU_MODEL, name: 'long', cmdline: 'x'.repeat(2047), presentCpus: 1, possibleCpus: 4 },
    { ...DEFAULT_CPU_MODEL, name: 'empty', cmdline: '' },
  ];
  for (const m of models) {
    const vmm = vmmOn(m);
    for (const cpu of vmm.cpus) {
      const r = detectCpu(cpu);
      if (!r.ok) return t.fail(r.error);
      const { name: _name, ...want } = m;
      t.deepEqual(r.value, want, m.name);
    }
    t.is(vmm.cpus.length, m.possibleCpus, 'a vCPU per possible CPU');
  }
});

test('CPUID is answered at CPL 3 too, and a guest on a VMM without the paravirtual leaves learns why it cannot boot', (t) => {
  const vmm = vmmOn(DEFAULT_CPU_MODEL);
  const cpu = vmm.bootCpu;
  cpu.setCpl(3);
  t.is(cpu.cpuid(1).eax, 0x506e3);
  cpu.setCpl(0);
  vmm.core.setCpuid(new Map([...vmm.core.cpuid].filter(([leaf]) => leaf !== CPUID_LEAF.HEKI_SIGNATURE)));
  const r = detectCpu(cpu);
  t.false(r.ok);
  if (!r.ok) t.regex(r.error, /0x40000100 lacks the "HekiSimCPUID" signature/);
});

test('cpuOnline raises the count CPUID reports, only up to the possible CPUs, and is audited', async (t) => {
  const vmm = vmmOn({ ...BUILTIN_CPU_MODELS.get('qemu64-up')!, name: 'up-3', possibleCpus: 3 });
  t.is(vmm.cpus.length, 3);
  t.is(vmm.bootCpu.cpuid(0x40000101).ebx, 1);
  for (const want of [2, 3]) {
    const r = await vmm.cpuOnline();
    t.deepEqual(r, { ok: true, value: want });
    t.is(vmm.cpus[want - 1]!.cpuid(0x40000101).ebx, want, 'every vCPU sees the new count');
  }
  const over = await vmm.cpuOnline();
  t.false(over.ok);
  if (!over.ok) t.is(over.error, 'all 3 possible CPUs of model up-3 are online');
  t.deepEqual(
    vmm.audit
      .records()
      .filter((r) => r['type'] === 'cpu-online')
      .map((r) => r['online']),
    [2, 3],
  );
  t.false(vmm.restoreOnlineCpus(4).ok, 'an image cannot claim more CPUs than the model has');
});
