/**
 * Attack: forge a hibernation image that resumes the VM weakened: take the genuine image from
 * the disk, clear the CR pins and make the kernel text writable and no longer immutable in
 * its saved core state, and sign it again with a key of the attacker's own (the VMM's per-VM
 * key never leaves the host).
 *
 * Expected stop: the verifier refuses the `restore-state` request: the image is signed by a
 * key its keyring does not hold. Nothing is applied, the VM stays off, and no weakened state
 * ever reaches the core.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { RESUME_SECTOR } from '../../hypervisor/vmm/lifecycle/hibernate.ts';
import { decodeVmImage, encodeVmImage } from '../../shared/vm-image.ts';
import { decodeSection, encodeSection } from '../../shared/state-section.ts';
import { CORE_SECTION } from '../../hypervisor/core/core-state-schema.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { vmImageSigner } from '../../shared/crypto/vm-image-signature.ts';
import type { CoreState } from '../../hypervisor/core/core-state.ts';
import { EPT_IMMUTABLE, EPT_W } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('a re-signed hibernation image with weakened protections is refused', async (t) => {
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  t.is((await m.hibernate()).outcome, 'allowed');
  const disk = m.vmm.devices.disk;
  const len = Number(new DataView(disk.readSectors(RESUME_SECTOR, 1).buffer).getBigUint64(8, true));
  const d = decodeVmImage(disk.readSectors(RESUME_SECTOR + 1, Math.ceil(len / 512)).subarray(0, len));
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
    { kind: 'hibernate', vm: d.value.header.vm, vmId: d.value.header.vmId },
    d.value.header.sections.map((x) => ({ name: x.name, bytes: x.name === 'core' ? encodeSection(CORE_SECTION, weakened) : d.value.sections.get(x.name)! })),
    vmImageSigner(generateEd25519KeyPair()),
  );
  const header = disk.readSectors(RESUME_SECTOR, 1);
  new DataView(header.buffer).setBigUint64(8, BigInt(forged.length), true);
  const body = new Uint8Array(Math.ceil(forged.length / 512) * 512);
  body.set(forged);
  disk.writeSectors(RESUME_SECTOR + 1, body);
  disk.writeSectors(RESUME_SECTOR, header);

  const r = await m.resume();
  t.is(r.outcome, 'denied');
  t.regex(r.reason, /state image: signed by key [0-9a-f]{16}, which the keyring does not hold/);
  t.regex(m.vmm.core.stopped ?? '', /^resume refused/);
  t.deepEqual(m.vmm.core.ept.entries(), [], 'no forged attribute reached the EPT');
  t.is(m.kernel, undefined);
  t.like(
    m.audit
      .records()
      .filter((x) => x['event'] === 'lifecycle')
      .at(-1),
    { type: 'resume', result: 'refused' },
  );
});
