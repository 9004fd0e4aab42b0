/**
 * The vCPU's MMU against the SDM, one named rule per test (issue 14): the I/D bit of the #PF
 * error code, reserved bits and MAXPHYADDR, MBEC's execute bit by the address's U/S, the TLB
 * entry a #PF drops, and the accessed and dirty flags, written through the EPT.
 */
import { gfn, gpa, gva, gpaToGfn } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, PTE, bootSynthetic, type SyntheticMachine } from '../helpers/synthetic-machine.ts';
import { CR4, EFER, PF_ERR } from '../../shared/x86/cpu.ts';
import { EPT_DEFAULT, EPT_R, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';
import { Vmm } from '../../hypervisor/index.ts';
import type { GuestOutcome } from '../../shared/guest-cpu.ts';
import { createMachineDetailed } from '../../machine/machine.ts';

const VA = 0xffff_c900_0000_0000n;
const PA = 0x70_0000n;

function pfOf(r: GuestOutcome<unknown>): { errorCode: number; cause: string } | undefined {
  return !r.ok && r.fault.kind === 'fault' && r.fault.vector === 'PF' ? { errorCode: r.fault.errorCode, cause: r.fault.cause } : undefined;
}

function setCr4(m: SyntheticMachine, cr4: bigint, efer?: bigint): void {
  const r = m.vmm.core.vcpus[0]!.setStateByVmm({ cr4, ...(efer !== undefined ? { efer } : {}) });
  if (!r.ok) throw new Error('setStateByVmm');
}

test('I/D: a fetch fault sets the I/D bit only with CR4.SMEP or EFER.NXE (SDM 4.7)', (t) => {
  const m = bootSynthetic();
  const va = 0xffff_ffff_a000_0000n; // not mapped
  const base = CR4.PAE | CR4.PGE;
  setCr4(m, base, EFER.LME | EFER.SCE);
  t.deepEqual(pfOf(m.cpu.fetch(gva(va), 1)), { errorCode: 0, cause: 'not-present' }, 'SMEP = 0, NXE = 0: I/D clear');
  setCr4(m, base | CR4.SMEP, EFER.LME | EFER.SCE);
  t.deepEqual(pfOf(m.cpu.fetch(gva(va), 1)), { errorCode: PF_ERR.FETCH, cause: 'not-present' }, 'SMEP = 1');
  setCr4(m, base, EFER.LME | EFER.SCE | EFER.NXE);
  t.deepEqual(pfOf(m.cpu.fetch(gva(va), 1)), { errorCode: PF_ERR.FETCH, cause: 'not-present' }, 'NXE = 1');
  t.deepEqual(pfOf(m.cpu.read(gva(va), 1)), { errorCode: 0, cause: 'not-present' }, 'a read never sets I/D');
});

test('reserved bits: 20:13 of a 2 MiB PDE and 29:13 of a 1 GiB PDPTE fault with RSVD; bit 12 (PAT) does not', (t) => {
  const m = bootSynthetic();
  m.vmm.core.memory.write(gpa(0x80_0000n), Uint8Array.of(0x77));
  m.pt.map(0xffff_c900_0020_0000n, 0x80_0000n | (1n << 13n), PTE.NX, 2);
  t.deepEqual(pfOf(m.cpu.read(gva(0xffff_c900_0020_0000n), 1)), { errorCode: PF_ERR.PRESENT | PF_ERR.RSVD, cause: 'reserved-bit' });
  m.pt.map(0xffff_c900_0040_0000n, 0x80_0000n | (1n << 12n), PTE.NX, 2);
  t.true(m.cpu.read(gva(0xffff_c900_0040_0000n), 1).ok, 'bit 12 of a large-page entry is PAT, not reserved');
  m.pt.map(0xffff_8880_0000_0000n, 1n << 21n, PTE.NX, 3);
  t.deepEqual(
    pfOf(m.cpu.write(gva(0xffff_8880_0000_0000n), Uint8Array.of(1))),
    { errorCode: PF_ERR.PRESENT | PF_ERR.RSVD | PF_ERR.WRITE, cause: 'reserved-bit' },
    'bit 21 is reserved in a 1 GiB entry',
  );
});

test('reserved bits: MAXPHYADDR is the physBits option (default 40); bits from it to 51 fault with RSVD, and CR3 may not set them', (t) => {
  const m = bootSynthetic();
  t.is(m.vmm.core.physBits, 40);
  m.pt.map(VA, PA | (1n << 40n), PTE.NX);
  t.deepEqual(pfOf(m.cpu.read(gva(VA), 1)), { errorCode: PF_ERR.PRESENT | PF_ERR.RSVD, cause: 'reserved-bit' });
  const cr3 = m.cpu.writeCr(3, LAYOUT.tables | (1n << 45n));
  t.true(!cr3.ok && cr3.fault.kind === 'fault' && cr3.fault.vector === 'GP' && cr3.fault.cause === 'reserved-bit');

  const wide = bootSynthetic({ physBits: 46 });
  wide.pt.map(VA, PA | (1n << 40n), PTE.NX);
  const r = wide.cpu.read(gva(VA), 1);
  t.is(pfOf(r)?.cause, 'ept-violation', 'with MAXPHYADDR 46, bit 40 is an address bit: a frame outside RAM, refused by the EPT');
  t.throws(() => new Vmm({ memoryBytes: 1n << 20n, physBits: 53 }), {
    instanceOf: RangeError,
    message: /physBits \(MAXPHYADDR\) must be an integer from 32 to 52, got 53/,
  });
});

test('reserved bits: XD without EFER.NXE and PS in a PML4 entry', (t) => {
  const m = bootSynthetic();
  setCr4(m, CR4.PAE | CR4.PGE, EFER.LME | EFER.SCE);
  t.deepEqual(
    pfOf(m.cpu.fetch(gva(m.kva(LAYOUT.data)), 1)),
    { errorCode: PF_ERR.PRESENT | PF_ERR.RSVD, cause: 'reserved-bit' },
    'NXE = 0 and SMEP = 0: no I/D even on RSVD',
  );
  const m2 = bootSynthetic();
  const pml4e = LAYOUT.tables + ((VA >> 39n) & 0x1ffn) * 8n;
  m2.vmm.core.memory.writeU64(gpa(pml4e), 0x20_0000n | PTE.P | PTE.RW | PTE.PS);
  t.deepEqual(pfOf(m2.cpu.read(gva(VA), 1)), { errorCode: PF_ERR.PRESENT | PF_ERR.RSVD, cause: 'reserved-bit' });
});

test('MBEC: the EPT execute bit is chosen by the address U/S, not by CPL: a CPL 0 fetch from a user page needs X-user', (t) => {
  const m = bootSynthetic();
  setCr4(m, CR4.PAE | CR4.PGE); // SMEP off, so the page walk allows the fetch
  const frame = Number(LAYOUT.user >> 12n);
  m.vmm.core.ept.set(gfn(frame), EPT_R | EPT_XS);
  const r = m.cpu.fetch(gva(LAYOUT.userVa), 1);
  t.deepEqual(pfOf(r), { errorCode: PF_ERR.PRESENT | PF_ERR.FETCH, cause: 'ept-violation' });
  t.like(m.vmm.log.byReason('ept-violation').at(-1)!.exit, { access: 'fetch', mode: 'kernel', pageWalk: false, gpa: LAYOUT.user });
  m.vmm.core.ept.set(gfn(frame), EPT_R | EPT_XU);
  t.true(m.cpu.fetch(gva(LAYOUT.userVa), 1).ok, 'X-user alone lets CPL 0 execute a user page');
  m.vmm.core.ept.set(gpaToGfn(gpa(LAYOUT.text)), EPT_R | EPT_XU);
  t.is(pfOf(m.cpu.fetch(gva(m.kva(LAYOUT.text)), 1))?.cause, 'ept-violation', 'a supervisor page needs X-supervisor');
  m.cpu.setCpl(3);
  m.vmm.core.ept.set(gfn(frame), EPT_R | EPT_XS);
  t.is(pfOf(m.cpu.fetch(gva(LAYOUT.userVa), 1))?.cause, 'ept-violation', 'CPL 3 fetch from a user page needs X-user too');
});

test('a #PF drops the TLB entry of the faulting address: the retry after a PTE upgrade without invlpg succeeds (SDM 4.10.4.1)', (t) => {
  const m = bootSynthetic();
  m.pt.map(VA, PA, PTE.NX);
  t.true(m.cpu.read(gva(VA), 1).ok, 'the read-only translation is now in the TLB');
  t.is(pfOf(m.cpu.write(gva(VA), Uint8Array.of(1)))?.cause, 'write-protect');
  m.pt.map(VA, PA, PTE.NX | PTE.RW); // what Linux's fault handler does: no invlpg
  t.true(m.cpu.write(gva(VA), Uint8Array.of(1)).ok);
  t.is(m.vmm.core.memory.read(gpa(PA), 1)[0], 1);
});

test('A/D: a read sets A at every level and no D; a write through a TLB entry with D = 0 walks again and sets D (SDM 4.8)', (t) => {
  const m = bootSynthetic();
  m.pt.map(VA, PA, PTE.NX | PTE.RW);
  const mem = m.vmm.core.memory;
  const leaf = m.pt.leafEntryGpa(VA);
  const pml4e = LAYOUT.tables + ((VA >> 39n) & 0x1ffn) * 8n;
  t.is(mem.readU64(gpa(leaf)) & (PTE.A | PTE.D), 0n);
  // The writer presets A and D in table entries, as Linux does: clear the PML4E's to see the walk set it.
  mem.writeU64(gpa(pml4e), mem.readU64(gpa(pml4e)) & ~(PTE.A | PTE.D));
  t.true(m.cpu.read(gva(VA), 1).ok);
  t.is(mem.readU64(gpa(leaf)) & (PTE.A | PTE.D), PTE.A);
  t.is(mem.readU64(gpa(pml4e)) & (PTE.A | PTE.D), PTE.A, 'the PML4E used by the walk is accessed (D of a table entry is ignored)');
  t.true(m.cpu.write(gva(VA), Uint8Array.of(1)).ok);
  t.is(mem.readU64(gpa(leaf)) & (PTE.A | PTE.D), PTE.A | PTE.D, 'the first write through the clean TLB entry set D');
  mem.writeU64(gpa(leaf), mem.readU64(gpa(leaf)) & ~PTE.D); // the guest clears D without invlpg
  t.true(m.cpu.write(gva(VA), Uint8Array.of(2)).ok);
  t.is(mem.readU64(gpa(leaf)) & PTE.D, 0n, 'the TLB entry is dirty: no walk, D stays clear until invlpg (as hardware)');
  m.cpu.invlpg(gva(VA));
  t.true(m.cpu.write(gva(VA), Uint8Array.of(3)).ok);
  t.is(mem.readU64(gpa(leaf)) & PTE.D, PTE.D);
});

test('A/D through the EPT: page tables write-protected in the EPT give an EPT violation (page walk, write) on an A/D update', (t) => {
  const m = bootSynthetic();
  m.pt.map(VA, PA, PTE.NX | PTE.RW);
  t.true(m.cpu.read(gva(VA), 1).ok, 'A set everywhere while the tables are writable');
  const { start, end } = m.pt.tableRange();
  for (let f = Number(start >> 12n); f < Number(end >> 12n); f++) m.vmm.core.ept.set(gfn(f), EPT_R);
  m.cpu.invlpg(gva(VA));
  t.true(m.cpu.read(gva(VA), 1).ok, 'a read needs no A/D write: read-only tables are enough');
  const w = m.cpu.write(gva(VA), Uint8Array.of(1));
  t.deepEqual(pfOf(w), { errorCode: PF_ERR.PRESENT | PF_ERR.WRITE, cause: 'ept-violation' });
  t.like(m.vmm.log.byReason('ept-violation').at(-1)!.exit, { gpa: m.pt.leafEntryGpa(VA), access: 'write', mode: 'kernel', pageWalk: true, perms: EPT_R });
  t.is(m.vmm.core.memory.read(gpa(PA), 1)[0], 0, 'the write did not happen');
  t.is(m.vmm.core.memory.readU64(gpa(m.pt.leafEntryGpa(VA))) & PTE.D, 0n, 'nor did the D update');
  for (let f = Number(start >> 12n); f < Number(end >> 12n); f++) m.vmm.core.ept.set(gfn(f), EPT_DEFAULT);
  t.true(m.cpu.write(gva(VA), Uint8Array.of(1)).ok, 'the EPT violation dropped the TLB entry; the retry walks and sets D');
});

test('the core reads through the guest tables without setting A or D', (t) => {
  const m = bootSynthetic();
  m.pt.map(VA, PA, PTE.NX | PTE.RW);
  const leaf = m.pt.leafEntryGpa(VA);
  t.is(m.vmm.core.vcpus[0]!.translateForCore(VA), gpaToGfn(gpa(PA)));
  t.is(m.vmm.core.memory.readU64(gpa(leaf)) & PTE.A, 0n);
});

test('a machine with a bad physBits is refused as bad input, naming the option, before anything starts', async (t) => {
  const r = await createMachineDetailed({ kernel: 'real', keys: { pubkeys: [], certs: [], revoked: [] }, physBits: 31 });
  t.deepEqual(r, { ok: false, error: { kind: 'input', message: 'physBits (MAXPHYADDR) must be an integer from 32 to 52, got 31' } });
});
