/**
 * Attack: write to kernel data that heki_late_init locked read-only and immutable: a const
 * (.rodata) page and an ro_after_init page (Heki v3 KUnit test_write_to_const /
 * test_write_to_ro_after_init). CR0.WP is pinned, so the attacker cannot write through the
 * read-only kernel mapping; it maps the same physical page writable at another address
 * (it owns the guest page tables) and writes through that alias.
 * Expected stop: EPT violation exit (write, kernel) for the page's gpa, #PF with cause
 * `ept-violation` delivered to the guest, byte unchanged.
 */
import { gpa, gva } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, PTE, bootSynthetic, lockSyntheticKernel } from '../helpers/synthetic-machine.ts';

for (const [name, pa] of [
  ['const (.rodata)', LAYOUT.rodata],
  ['ro_after_init', LAYOUT.roAfterInit],
] as const) {
  test(`writing to a locked ${name} page faults and leaves the byte unchanged`, async (t) => {
    const m = bootSynthetic();
    t.is(await lockSyntheticKernel(m), 0);
    // A writable alias of the same physical page: the guest page tables allow the write.
    const alias = 0xffff_c900_0000_0000n;
    m.pt.map(alias, pa, PTE.RW | PTE.NX);
    const before = m.vmm.core.memory.read(gpa(pa), 1)[0];

    const r = m.cpu.write(gva(alias), Uint8Array.of(0x41));

    t.false(r.ok);
    if (!r.ok) t.like(r.fault, { kind: 'fault', vector: 'PF', cause: 'ept-violation', address: alias });
    t.is(m.vmm.core.memory.read(gpa(pa), 1)[0], before);
    const ev = m.vmm.log.byReason('ept-violation');
    t.is(ev.length, 1);
    t.like(ev[0]!.exit, { gpa: pa, access: 'write', mode: 'kernel', pageWalk: false });
  });

  test(`writing to a locked ${name} page through its own read-only mapping faults in the page walk checks`, async (t) => {
    const m = bootSynthetic();
    t.is(await lockSyntheticKernel(m), 0);
    const r = m.cpu.write(gva(m.kva(pa)), Uint8Array.of(0x41));
    t.false(r.ok);
    if (!r.ok) t.like(r.fault, { vector: 'PF', cause: 'write-protect' });
  });
}
