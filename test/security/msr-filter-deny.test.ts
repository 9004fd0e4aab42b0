/**
 * Attack: after the guest locked its CRs, overwrite MSR_LSTAR (the syscall entry point) with
 * an attacker address, and reload IDTR with a fake table.
 * Expected stop: the VMM pinned these on the lock (MSR filter, descriptor-table filter): a
 * `msr-write` / `dt-write` exit, the default policy injects #GP, the value is unchanged.
 */
import { gva } from '../../shared/addr.ts';
import test from 'ava';
import { bootSynthetic } from '../helpers/synthetic-machine.ts';
import { CR4, MSR } from '../../shared/x86/cpu.ts';
import { HC } from '../../shared/abi.ts';

test('wrmsr LSTAR after the lock exits to the VMM, #GP, value unchanged', async (t) => {
  const m = bootSynthetic();
  t.true(m.cpu.wrmsr(MSR.LSTAR, 0xffff_ffff_8100_0040n).ok, 'before the lock the kernel sets LSTAR');
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP | CR4.SMAP, 0n), 0);
  t.true(m.vmm.platformPinned);

  const r = m.cpu.wrmsr(MSR.LSTAR, 0xffff_ffff_dead_0000n);

  t.false(r.ok);
  if (!r.ok) t.like(r.fault, { vector: 'GP', cause: 'msr-filter' });
  const v = m.cpu.rdmsr(MSR.LSTAR);
  t.true(v.ok && v.value === 0xffff_ffff_8100_0040n);
  const ev = m.vmm.log.byReason('msr-write');
  t.is(ev.length, 1);
  t.like(ev[0]!.exit, { msr: MSR.LSTAR, value: 0xffff_ffff_dead_0000n });
  t.is(ev[0]!.action, 'inject');
});

test('lidt after the lock exits to the VMM, #GP, IDTR unchanged', async (t) => {
  const m = bootSynthetic();
  t.true(m.cpu.lidt({ base: 0xffff_ffff_8200_0000n, limit: 0xfff }).ok);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, 1n << 16n, 0n), 0);

  const r = m.cpu.lidt({ base: 0xffff_8880_0000_0000n, limit: 0xfff });

  t.false(r.ok);
  if (!r.ok) t.like(r.fault, { vector: 'GP', cause: 'dt-filter' });
  t.is(m.cpu.sidt().base, 0xffff_ffff_8200_0000n);
  t.is(m.vmm.log.byReason('dt-write').length, 1);
});

test('a VMM policy that stops on MSR writes stops the VM', async (t) => {
  const m = bootSynthetic({ policy: { 'msr-write': () => ({ action: 'stop', reason: 'LSTAR tampering' }) } });
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 0n), 0);
  const r = m.cpu.wrmsr(MSR.LSTAR, 0xffff_ffff_dead_0000n);
  t.false(r.ok);
  if (!r.ok) t.like(r.fault, { kind: 'stopped', detail: 'LSTAR tampering' });
  t.is(m.vmm.core.stopped, 'LSTAR tampering');
  const next = m.cpu.read(gva(0xffff_ffff_8100_0000n), 1);
  t.false(next.ok, 'a stopped VM runs nothing');
});
