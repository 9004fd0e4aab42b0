/**
 * Heki v2's counters on the real kernel: a page's EPT permission is the union over all its
 * kernel mappings. Dropping the writable alias narrows the EPT; adding a writable alias again
 * widens it through the authenticated path.
 */
import { gfn, gva } from '../../shared/addr.ts';
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import { PROT } from '../../guest/mm/kernel-mm.ts';

needsFixtures(test)("an aliased page keeps the union of its mappings' permissions", async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const k = m.kernel!;
  const a = await k.mm.vmalloc(1, PROT.RW);
  t.true(a.ok);
  if (!a.ok) return;
  const frame = a.value.frames[0]!;
  const ept = () => m.vmm.core.ept.get(gfn(frame)) & (EPT_R | EPT_W | EPT_XS);
  t.is(ept(), EPT_R | EPT_W);

  const b = await k.mm.vmap([frame], PROT.RO);
  t.true(b.ok);
  if (!b.ok) return;
  t.deepEqual(k.heki.counters.counts(frame), { read: 3, write: 2, exec: 0 }, 'direct map + RW alias + RO alias');
  t.is(ept(), EPT_R | EPT_W, 'union of RW and R is RW');

  t.true((await k.mm.vunmap(a.value.va, 1)).ok);
  t.is(ept(), EPT_R | EPT_W, 'the direct map still maps it RW');
  // Make the direct-map alias read-only too: now every mapping is read-only, so is the EPT.
  const direct = 0xffff_8880_0000_0000n + BigInt(frame) * 4096n;
  t.true((await k.mm.setMemory(direct, 1, 'ro')).ok, 'splits the 2 MiB direct mapping first, as CPA does');
  t.not(k.mm.pageTables.lookup(direct, 1), undefined);
  t.is(ept(), EPT_R, 'no writable mapping left: the EPT narrowed to read-only');
  t.false(k.cpu.write(gva(b.value), Uint8Array.of(1)).ok);

  const c = await k.mm.vmap([frame], PROT.RW);
  t.true(c.ok, 'a writable alias of a data page is allowed (verified set-memory)');
  t.is(ept(), EPT_R | EPT_W);
  if (c.ok) t.true(k.cpu.write(gva(c.value), Uint8Array.of(1)).ok);
  const sm = m.audit.records().filter((r) => r['kind'] === 'set-memory');
  t.is(sm.length, 1);
  t.like(sm[0], { ok: true, applied: true });
});
