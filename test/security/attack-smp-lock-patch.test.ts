/**
 * Attack (smp-lock-patch): the guest kernel, owned by the attacker, uses the lock-prefix
 * restore path (text-patch kind `smp-lock`) to write kernel text: before the VMM brought a
 * second CPU online, at a byte that is not a `.smp_locks` prefix, and to strip a `lock`
 * prefix (f0 -> 3e) on a guest with two CPUs online.
 * Expected stop: the verifier's smp-lock plugin denies each, naming the site (audit record
 * ok=false with the reason); the hypercall fails; the bytes at the site are unchanged.
 */
import { gva } from '../../shared/addr.ts';
import test from 'ava';
import { join } from 'node:path';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { repoRoot } from '../../shared/kernel-image/fixture-paths.ts';
import { kernelSmpLocks } from '../../shared/x86/smp-locks.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';

const HOTPLUG = join(repoRoot(), 'test', 'fixtures', 'cpu-models', 'qemu64-up-hotplug');
const hex = (v: bigint): string => `0x${v.toString(16)}`;

async function attempt(m: SimulatedMachine, site: bigint, neu: number): Promise<{ ok: boolean; why: string; after: number }> {
  const k = m.kernel!;
  const cur = k.cpu.read(gva(site), 1);
  if (!cur.ok) throw new Error(`cannot read ${hex(site)}`);
  const mark = m.verdictMark();
  const r = await k.poker.poke([{ kind: 'smp-lock', site, oldBytes: cur.value, newBytes: Uint8Array.of(neu) }]);
  const after = k.cpu.read(gva(site), 1);
  return { ok: r.ok, why: m.deniedSince(mark).join(' | '), after: after.ok ? after.value[0]! : -1 };
}

needsFixtures(test)(
  'smp-lock-patch: lock-prefix patches before the VMM raised the count, off .smp_locks, or stripping a lock are denied naming the site',
  async (t) => {
    const m = await bootRealMachine({ cpu: HOTPLUG });
    t.teardown(() => m.dispose());
    const site = kernelSmpLocks(m.image)[100]!;
    const before = m.kernel!.cpu.read(gva(site), 1);
    t.true(before.ok && before.value[0] === 0x3e, 'one CPU present: the boot patched the lock prefix to UP (ds)');

    const early = await attempt(m, site, 0xf0);
    t.false(early.ok);
    t.regex(
      early.why,
      new RegExp(`smp-lock: lock-prefix restore at \\.smp_locks site ${hex(site)} \\(kernel\\) before the VMM brought a second CPU online \\(1 online\\)`),
    );
    t.is(early.after, 0x3e);

    t.is((await m.cpuOnline()).outcome, 'allowed');
    const restored = m.kernel!.cpu.read(gva(site), 1);
    t.true(restored.ok && restored.value[0] === 0xf0, 'alternatives_enable_smp() restored the lock prefix once the VMM raised the count');
    const off = site + 1n;
    const offSite = await attempt(m, off, 0xf0);
    t.false(offSite.ok);
    t.regex(offSite.why, new RegExp(`${hex(off)} is not a lock-prefix site \\(no \\.smp_locks entry of the kernel or a verified module\\)`));

    const strip = await attempt(m, site, 0x3e);
    t.false(strip.ok);
    t.regex(strip.why, new RegExp(`\\.smp_locks site ${hex(site)} \\(kernel\\): f0 -> 3e is not the UP-to-SMP restore 3e -> f0`));
    t.is(strip.after, 0xf0, 'the lock prefix is still there');
  },
);
