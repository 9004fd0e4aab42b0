/**
 * The CPUs online reach every verifier worker: the VMM's count, told over the control plane
 * (VerifierLink.setOnlineCpus), holds in the worker that replaces a crashed one (the warm
 * spare was told too; a worker started later gets it in its init), so a lock-prefix restore
 * the VMM allowed stays allowed after a failover, and one it did not stays denied.
 */
import test from 'ava';
import { VerifierLink } from '../../hypervisor/verifier-link/verifier-link.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { BUILTIN_CPU_MODELS } from '../../shared/x86/cpu-models-builtin.ts';
import { K, syntheticBody } from '../unit/plugin-synthetic.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';

const keys = testKeyring();
const LOCK = K.text + 0x500n;
const manifest = signManifest({ ...syntheticBody(), smpLocks: [LOCK.toString(16)] }, keys.vendor);
const model = { ...BUILTIN_CPU_MODELS.get('qemu64-up')!, name: 'up-2', possibleCpus: 2 };
const restore: PatchItem = { kind: 'smp-lock', site: LOCK, oldBytes: Uint8Array.of(0x3e), newBytes: Uint8Array.of(0xf0), currentBytes: Uint8Array.of(0x3e) };
const patch = { kind: 'text-patch' as const, vm: 'vm0', items: [restore] };

for (const spare of [true, false]) {
  test(`the online count survives a verifier crash (${spare ? 'warm spare' : 'worker started on demand'})`, async (t) => {
    const link = await VerifierLink.start({
      init: { keyring: keys.data, manifest, faultInjection: true, vms: { vm0: { cpuModel: model } } },
      transport: 'comlink',
      spare,
    });
    t.teardown(() => link.dispose());
    const early = await link.verify(patch);
    t.false(early.ok);
    t.regex(early.reason, /before the VMM brought a second CPU online \(1 online\)/);
    if (spare) t.true(await link.standby());
    t.is(await link.setOnlineCpus('vm0', 2), undefined);
    t.regex((await link.setOnlineCpus('vm0', 3)) ?? '', /3 CPUs online is not an integer from the model's 1 present to its 2 possible CPUs/);
    t.true(await link.injectFault('crash'));
    t.false((await link.verify(patch)).ok, 'the crashed request fails closed');
    const after = await link.verify(patch);
    t.true(after.ok, after.reason);
    t.is(link.stats.restarts, 1);
  });
}
