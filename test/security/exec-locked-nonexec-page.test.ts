/**
 * Attack: execute from a locked non-executable page (Heki v3 KUnit test_exec_data). The
 * attacker maps the data page executable in its own page tables (no NX), so the guest-side
 * checks pass and only the EPT stands in the way.
 * Expected stop: EPT violation exit (fetch, kernel) for the data page, #PF `ept-violation`.
 */
import { gva } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, bootSynthetic, lockSyntheticKernel } from '../helpers/synthetic-machine.ts';

test('executing from a locked non-executable page faults with an EPT violation', async (t) => {
  const m = bootSynthetic();
  t.is(await lockSyntheticKernel(m), 0);
  const execAlias = 0xffff_c900_1000_0000n;
  m.pt.map(execAlias, LAYOUT.data, 0n); // present, read-only, executable in the guest's view

  const r = m.cpu.fetch(gva(execAlias), 2);

  t.false(r.ok);
  if (!r.ok) t.like(r.fault, { kind: 'fault', vector: 'PF', cause: 'ept-violation' });
  const ev = m.vmm.log.byReason('ept-violation');
  t.is(ev.length, 1);
  t.like(ev[0]!.exit, { gpa: LAYOUT.data, access: 'fetch', mode: 'kernel' });
});

test('the locked text page still executes (control)', async (t) => {
  const m = bootSynthetic();
  t.is(await lockSyntheticKernel(m), 0);
  const r = m.cpu.fetch(gva(m.kva(LAYOUT.text)), 5);
  t.true(r.ok);
  if (r.ok) t.deepEqual([...r.value], [0x0f, 0x1f, 0x44, 0x00, 0x00]);
});
