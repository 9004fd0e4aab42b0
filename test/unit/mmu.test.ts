import test from 'ava';
import { forgedGva } from '../helpers/forged-addr.ts';
import { gpa, gva, gpaToGfn } from '../../shared/addr.ts';
import { LAYOUT, PTE, bootSynthetic } from '../helpers/synthetic-machine.ts';
import { CR0, CR4, EFER } from '../../shared/x86/cpu.ts';

test('kernel reads through 4 KiB, 2 MiB and 1 GiB mappings reach the right frames', async (t) => {
  const m = bootSynthetic();
  m.vmm.core.memory.write(gpa(0x80_0000n + 0x1234n), Uint8Array.of(0x77));
  m.pt.map(0xffff_c900_0020_0000n, 0x80_0000n, PTE.NX, 2);
  m.pt.map(0xffff_8880_0000_0000n, 0n, PTE.NX, 3);
  const r2m = m.cpu.read(gva(0xffff_c900_0020_1234n), 1);
  const r1g = m.cpu.read(gva(0xffff_8880_0080_1234n), 1);
  t.true(r2m.ok && r2m.value[0] === 0x77);
  t.true(r1g.ok && r1g.value[0] === 0x77);
});

test('a non-present mapping raises #PF not-present with the address', async (t) => {
  const m = bootSynthetic();
  const r = m.cpu.read(gva(0xffff_ffff_a000_0000n), 1);
  t.false(r.ok);
  if (!r.ok) t.like(r.fault, { vector: 'PF', cause: 'not-present', address: 0xffff_ffff_a000_0000n });
});

test('a non-canonical address raises #GP', async (t) => {
  const m = bootSynthetic();
  const r = m.cpu.read(forgedGva(0x0000_8000_0000_0000n), 1);
  t.false(r.ok);
  if (!r.ok) t.like(r.fault, { vector: 'GP', cause: 'non-canonical' });
});

test('NX, SMEP and SMAP are enforced; stac lifts SMAP for data only', async (t) => {
  const m = bootSynthetic();
  const nx = m.cpu.fetch(gva(m.kva(LAYOUT.data)), 1);
  t.true(!nx.ok && nx.fault.kind === 'fault' && nx.fault.cause === 'nx');
  const smep = m.cpu.fetch(gva(LAYOUT.userVa), 1);
  t.true(!smep.ok && smep.fault.kind === 'fault' && smep.fault.cause === 'smep');
  const smap = m.cpu.read(gva(LAYOUT.userVa), 1);
  t.true(!smap.ok && smap.fault.kind === 'fault' && smap.fault.cause === 'smap');
  m.cpu.setAc(true);
  t.true(m.cpu.read(gva(LAYOUT.userVa), 1).ok);
  t.false(m.cpu.fetch(gva(LAYOUT.userVa), 1).ok, 'AC does not lift SMEP');
});

test('user mode cannot touch supervisor pages and may use its own', async (t) => {
  const m = bootSynthetic();
  m.cpu.setCpl(3);
  const r = m.cpu.read(gva(m.kva(LAYOUT.data)), 1);
  t.true(!r.ok && r.fault.kind === 'fault' && r.fault.cause === 'user-supervisor');
  t.true(m.cpu.write(gva(LAYOUT.userVa), Uint8Array.of(1)).ok);
  t.true(m.cpu.fetch(gva(LAYOUT.userVa), 1).ok);
});

test('CR0.WP decides whether the kernel may write read-only pages', async (t) => {
  const m = bootSynthetic();
  const va = m.kva(LAYOUT.rodata);
  const wp = m.cpu.write(gva(va), Uint8Array.of(1));
  t.true(!wp.ok && wp.fault.kind === 'fault' && wp.fault.cause === 'write-protect');
  t.true(m.cpu.writeCr(0, m.cpu.readCr(0) & ~CR0.WP).ok);
  t.true(m.cpu.write(gva(va), Uint8Array.of(1)).ok, 'with WP clear a supervisor write to a read-only page succeeds');
});

test('the TLB keeps a stale translation until invlpg or a CR3 write', async (t) => {
  const m = bootSynthetic();
  const va = 0xffff_c900_0000_0000n;
  m.vmm.core.memory.write(gpa(0x70_0000n), Uint8Array.of(0x11));
  m.vmm.core.memory.write(gpa(0x71_0000n), Uint8Array.of(0x22));
  m.pt.map(va, 0x70_0000n, PTE.NX);
  t.deepEqual(m.cpu.read(gva(va), 1), { ok: true, value: Uint8Array.of(0x11) });
  m.pt.map(va, 0x71_0000n, PTE.NX);
  t.deepEqual(m.cpu.read(gva(va), 1), { ok: true, value: Uint8Array.of(0x11) }, 'stale entry still used');
  m.cpu.invlpg(gva(va));
  t.deepEqual(m.cpu.read(gva(va), 1), { ok: true, value: Uint8Array.of(0x22) });
  m.pt.map(va, 0x70_0000n, PTE.NX);
  t.true(m.cpu.writeCr(3, m.cpu.readCr(3)).ok);
  t.deepEqual(m.cpu.read(gva(va), 1), { ok: true, value: Uint8Array.of(0x11) }, 'CR3 write flushed the non-global entry');
});

test('NX in a PTE is a reserved bit when EFER.NXE is clear', async (t) => {
  const m = bootSynthetic();
  t.true(m.cpu.wrmsr(0xc0000080, EFER.LME | EFER.SCE).ok);
  const r = m.cpu.read(gva(m.kva(LAYOUT.data)), 1);
  t.true(!r.ok && r.fault.kind === 'fault' && r.fault.cause === 'reserved-bit');
});

test('the page walk itself is EPT-checked: unreadable page tables give an EPT violation', async (t) => {
  const m = bootSynthetic();
  m.vmm.core.ept.set(gpaToGfn(gpa(LAYOUT.tables)), 0);
  const r = m.cpu.read(gva(m.kva(LAYOUT.data)), 1);
  t.true(!r.ok && r.fault.kind === 'fault' && r.fault.cause === 'ept-violation');
  const ev = m.vmm.log.byReason('ept-violation');
  t.is(ev.length, 1);
  t.like(ev[0]!.exit, { pageWalk: true, gpa: LAYOUT.tables + ((m.kva(LAYOUT.data) >> 39n) & 0x1ffn) * 8n });
});

test('a multi-page write that faults on its second page writes nothing', async (t) => {
  const m = bootSynthetic();
  const va = 0xffff_c900_0000_0000n;
  m.pt.map(va, 0x70_0000n, PTE.RW | PTE.NX);
  m.pt.map(va + 0x1000n, 0x71_0000n, PTE.NX); // read-only second page
  const r = m.cpu.write(gva(va + 0xff0n), new Uint8Array(32).fill(0xcc));
  t.false(r.ok);
  t.deepEqual([...m.vmm.core.memory.read(gpa(0x70_0ff0n), 16)], new Array(16).fill(0));
});

test('with paging off, virtual addresses are physical', async (t) => {
  const m = bootSynthetic();
  t.true(m.vmm.core.vcpus[0]!.setStateByVmm({ cr0: CR0.PE | CR0.ET, cr4: 0n }).ok);
  const r = m.cpu.read(gva(LAYOUT.rodata), 5);
  t.true(r.ok && new TextDecoder().decode(r.value) === 'const');
  t.is(m.cpu.readCr(4) & CR4.SMEP, 0n);
});
