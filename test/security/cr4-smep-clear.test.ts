/**
 * Attack: after the guest pinned CR4.SMEP, an exploit does `mov cr4, (cr4 & ~SMEP)` to run
 * user pages in kernel mode (Heki v3 KUnit test_cr_disable_smep).
 * Expected stop: #GP with cause `cr-pin`; CR4.SMEP still set; a `heki-denial` exit of kind
 * `cr-pin` naming SMEP is in the VMM's event log.
 */
import test from 'ava';
import { bootSynthetic } from '../helpers/synthetic-machine.ts';
import { CR4 } from '../../shared/x86/cpu.ts';
import { HC } from '../../shared/abi.ts';

test('clearing pinned CR4.SMEP raises #GP and leaves SMEP set', async (t) => {
  const m = bootSynthetic();
  t.is(await m.cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 0n), 0);
  const before = m.cpu.readCr(4);
  t.true((before & CR4.SMEP) !== 0n);

  const r = m.cpu.writeCr(4, before & ~CR4.SMEP);

  t.false(r.ok);
  if (r.ok) return;
  t.like(r.fault, { kind: 'fault', vector: 'GP', cause: 'cr-pin' });
  t.is(m.cpu.readCr(4), before);
  const denials = m.vmm.log.byReason('heki-denial');
  t.is(denials.length, 1);
  t.like(denials[0]!.exit.denial, { kind: 'cr-pin', cr: 4, cleared: CR4.SMEP });
  t.is(denials[0]!.action, 'inject');
});
