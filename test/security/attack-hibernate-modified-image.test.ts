/**
 * Attack: while the VM is hibernated, change its image on the disk (the disk is the guest's,
 * and its file the host's): one byte of the saved guest memory (say, kernel text), one byte of
 * the signed header, one byte of the signature.
 *
 * Expected stop: on resume the verifier refuses the `restore-state` request: the memory
 * section's SHA-256 is not the signed one, or the signature does not verify. The VMM applies
 * nothing: the VM stays off (no guest instruction runs), and a cold boot starts it afresh
 * with its own protections.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { bootRealMachine } from '../helpers/real-machine.ts';
import { RESUME_SECTOR } from '../../hypervisor/vmm/lifecycle/hibernate.ts';
import { decodeVmImage } from '../../shared/vm-image.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';

/** Flips one byte of the image on the disk at `where` (an offset into the image). */
function flipOnDisk(m: SimulatedMachine, where: (image: Uint8Array) => number): void {
  const disk = m.vmm.devices.disk;
  const len = Number(new DataView(disk.readSectors(RESUME_SECTOR, 1).buffer).getBigUint64(8, true));
  const sectors = Math.ceil(len / 512);
  const body = disk.readSectors(RESUME_SECTOR + 1, sectors);
  const at = where(body.subarray(0, len));
  body[at]! ^= 0x01;
  disk.writeSectors(RESUME_SECTOR + 1, body);
}

needsFixtures(test)('a hibernation image changed on the disk is refused and the VM stays off', async (t) => {
  t.timeout(300_000);
  const m = await bootRealMachine();
  t.teardown(() => m.dispose());
  const cases: Array<[string, (image: Uint8Array) => number, RegExp]> = [
    [
      'memory',
      (img) => {
        const d = decodeVmImage(img);
        if (!d.ok) throw new Error(d.error.message);
        const mem = d.value.sections.get('memory')!;
        return mem.byteOffset - img.byteOffset + 1000;
      },
      /state image: section memory: SHA-256 [0-9a-f]{64} differs from the signed [0-9a-f]{64}: the image was modified after it was signed/,
    ],
    // A digit of the signed `created` time: the header still parses, its digest changed.
    [
      'header',
      (img) => 12 + new TextDecoder().decode(img.subarray(12, 12 + 512)).indexOf('"created":"') + 12,
      /state image: the signature does not verify with key [0-9a-f]{16}/,
    ],
    ['signature', (img) => 12 + new DataView(img.buffer, img.byteOffset).getUint32(8, true) + 4 + 10, /state image: the signature does not verify/],
  ];
  for (const [what, where, reason] of cases) {
    t.is((await m.hibernate()).outcome, 'allowed', what);
    flipOnDisk(m, where);
    const r = await m.resume();
    t.is(r.outcome, 'denied', what);
    t.regex(r.reason, reason, what);
    t.regex(m.vmm.core.stopped ?? '', /^resume refused/, `${what}: the VM stays off`);
    t.is(m.kernel, undefined);
    t.is(m.vmm.core.pins.get(4), 0n, `${what}: nothing of the image was applied`);
    t.deepEqual(m.vmm.core.ept.entries(), []);
    t.like(
      m.audit
        .records()
        .filter((x) => x['kind'] === 'restore-state')
        .at(-1),
      { ok: false, applied: false, plugins: ['lifecycle'] },
    );
    const b = await m.boot();
    t.is(b.outcome, 'allowed', `${what}: a cold boot instead`);
    t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');
  }
});
