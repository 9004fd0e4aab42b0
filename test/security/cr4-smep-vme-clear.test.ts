/**
 * Attack: clear pinned CR4.SMEP together with the unpinned CR4.VME in one write, hoping the
 * core applies the unpinned part (Heki v3 KUnit: "clearing SMEP and VME together leaves
 * both set"). Expected stop: #GP `cr-pin`; CR4 unchanged in every bit, VME included.
 * Control: VME alone, which is not pinned, toggles freely.
 */
import test from 'ava';
import { bootSynthetic } from '../helpers/synthetic-machine.ts';
import { CR4 } from '../../shared/x86/cpu.ts';
import { HC } from '../../shared/abi.ts';

test('clearing SMEP and VME together changes neither', async (t) => {
  const m = bootSynthetic();
  t.true(m.cpu.writeCr(4, m.cpu.readCr(4) | CR4.VME).ok);
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 0n), 0);
  const before = m.cpu.readCr(4);

  const r = m.cpu.writeCr(4, before & ~(CR4.SMEP | CR4.VME));

  t.false(r.ok);
  if (!r.ok) t.like(r.fault, { vector: 'GP', cause: 'cr-pin' });
  t.is(m.cpu.readCr(4), before);
  t.true((m.cpu.readCr(4) & CR4.VME) !== 0n, 'VME must not be cleared by a refused write');
});

test('VME alone toggles freely while SMEP is pinned', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 0n), 0);
  t.true(m.cpu.writeCr(4, m.cpu.readCr(4) | CR4.VME).ok);
  t.true((m.cpu.readCr(4) & CR4.VME) !== 0n);
  t.true(m.cpu.writeCr(4, m.cpu.readCr(4) & ~CR4.VME).ok);
  t.is(m.cpu.readCr(4) & CR4.VME, 0n);
  t.true((m.cpu.readCr(4) & CR4.SMEP) !== 0n);
});
