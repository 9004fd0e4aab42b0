/**
 * Attack: hand the destination a snapshot that was not made by the trusted source: a genuine
 * snapshot re-signed by another key with the pins cleared and the kernel text writable; a
 * hibernation image passed off as a migration snapshot.
 *
 * Expected stop: the destination refuses each before it starts a verifier or a VM, naming the
 * check: `untrusted-key` (signed by a key that is not the trusted source's) and `kind` (an
 * image made for hibernation). Only a snapshot the trusted source signed, unmodified, restores.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { snapshotVm, restoreVm } from '../../machine/lifecycle/migration.ts';
import { captureVmImage } from '../../hypervisor/vmm/lifecycle/vm-state-image.ts';
import { decodeVmImage, encodeVmImage } from '../../shared/vm-image.ts';
import { decodeSection, encodeSection } from '../../shared/state-section.ts';
import { CORE_SECTION } from '../../hypervisor/core/core-state-schema.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { vmImageSigner } from '../../shared/crypto/vm-image-signature.ts';
import type { CoreState } from '../../hypervisor/core/core-state.ts';
import { EPT_IMMUTABLE, EPT_W } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('a forged or misused snapshot is refused by the destination, naming the check', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const host = m.host!;
  const snap = await snapshotVm(m.vmm, m.kernel!, host, m.audit);
  if (!snap.ok) throw new Error(snap.error);
  const d = decodeVmImage(snap.value);
  if (!d.ok) throw new Error(d.error.message);
  const core = decodeSection(CORE_SECTION, d.value.sections.get('core')!);
  if (!core.ok) throw new Error(core.error);
  const s = core.value;
  const weakened: CoreState = {
    ...s,
    pins: { cr0: 0n, cr4: 0n },
    ept: s.ept.map(([f, n, p]) => [f, n, (p | EPT_W) & ~EPT_IMMUTABLE] as [number, number, number]),
  };
  const forged = encodeVmImage(
    { kind: 'migration', vm: d.value.header.vm, vmId: d.value.header.vmId },
    d.value.header.sections.map((x) => ({ name: x.name, bytes: x.name === 'core' ? encodeSection(CORE_SECTION, weakened) : d.value.sections.get(x.name)! })),
    vmImageSigner(generateEd25519KeyPair()),
  );
  const opts = { trust: m.vmm.identity.publicKey, image: m.image, host };
  const a = await restoreVm(forged, opts);
  t.like(a, { ok: false, error: { kind: 'untrusted-key' } });
  t.regex(a.ok ? '' : a.error.message, /^signed by key [0-9a-f]{16}, not by the trusted source key [0-9a-f]{16}$/);

  const hib = await captureVmImage(m.vmm, 'hibernate', []);
  if (!hib.ok) throw new Error(hib.error);
  const b = await restoreVm(hib.value, opts);
  t.like(b, { ok: false, error: { kind: 'kind' } });

  const genuine = await restoreVm(snap.value, opts);
  t.true(genuine.ok, genuine.ok ? '' : genuine.error.message);
  if (genuine.ok) {
    t.deepEqual(genuine.value.vmm.core.pins.get(4), m.vmm.core.pins.get(4));
    await genuine.value.link.dispose();
  }
});
