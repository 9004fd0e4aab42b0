/**
 * Attack: after heki_late_init locked .text RX and IMMUTABLE, ask PROTECT_MEMORY to make it
 * writable (or to drop the IMMUTABLE bit), hiding the change behind a harmless first entry.
 * Expected stop: -KVM_EPERM, a `heki-denial` exit of kind `immutable` for the text frame,
 * and no entry of the list applied (the harmless one neither).
 */
import test from 'ava';
import { LAYOUT, bootSynthetic, lockSyntheticKernel, protect } from '../helpers/synthetic-machine.ts';
import { KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';

test('changing an IMMUTABLE page fails with -KVM_EPERM and applies nothing', async (t) => {
  const m = bootSynthetic();
  t.is(await lockSyntheticKernel(m), 0);
  const before = JSON.stringify(m.vmm.core.ept.entries());
  const listAt = LAYOUT.pageList + 0x2000n;

  const r = await protect(
    m,
    [
      { pa: LAYOUT.user, epa: LAYOUT.user + 0x1000n, permissions: MEM_ATTR.READ },
      { pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE },
    ],
    listAt,
  );

  t.is(r, -KVM_STATUS.KVM_EPERM);
  t.is(JSON.stringify(m.vmm.core.ept.entries()), before);
  const d = m.vmm.log.byReason('heki-denial');
  t.is(d.length, 1);
  t.like(d[0]!.exit.denial, { kind: 'immutable', frame: Number(LAYOUT.text >> 12n) });
});

test('dropping only the IMMUTABLE bit is refused too', async (t) => {
  const m = bootSynthetic();
  t.is(await lockSyntheticKernel(m), 0);
  t.is(
    await protect(m, [{ pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.EXEC }], LAYOUT.pageList + 0x2000n),
    -KVM_STATUS.KVM_EPERM,
  );
});

test('re-stating the same attributes of an IMMUTABLE page is accepted as a no-op', async (t) => {
  const m = bootSynthetic();
  t.is(await lockSyntheticKernel(m), 0);
  const same = MEM_ATTR.READ | MEM_ATTR.EXEC | MEM_ATTR.IMMUTABLE;
  t.is(await protect(m, [{ pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: same }], LAYOUT.pageList + 0x2000n), 0);
});
