/**
 * The stored image of format version 2 (test/fixtures/vm-image-v2/, made by its
 * make-fixture.ts) must keep restoring: a change to the image format or to a section's schema
 * that no longer reads images already on disks and in snapshot files fails here. Such a change
 * needs a new version (and a new fixture), with this one refused by name or still read.
 */
import { gpa } from '../../shared/addr.ts';
import test from 'ava';
import { readFileSync } from 'node:fs';
import { checkVmImage, decodeVmImage } from '../../shared/vm-image.ts';
import { decodeSection } from '../../shared/state-section.ts';
import { ed25519KeyPairFromSeed } from '../../shared/crypto/ed25519.ts';
import { publicKeyVmImageVerifier } from '../../shared/crypto/vm-image-signature.ts';
import { decodeVerifierSection } from '../../verifier-vm/vm-state.ts';
import { GUEST_SECTION } from '../../guest/kernel/guest-state-schema.ts';
import { applyVmState, decodeVmState } from '../../hypervisor/vmm/lifecycle/vm-state-image.ts';
import { EPT_IMMUTABLE, EPT_R } from '../../hypervisor/ept/permissions.ts';
import { emptyFixtureVmm, FIXTURE_VM } from '../fixtures/vm-image-v2/fixture-vm.ts';

const dir = new URL('../fixtures/vm-image-v2/', import.meta.url);
const seed = Buffer.from(readFileSync(new URL('signing-seed.hex', dir), 'utf8').trim(), 'hex');
const stored = new Uint8Array(readFileSync(new URL('hibernate.img', dir)));

function checkedImage() {
  const d = decodeVmImage(stored);
  if (!d.ok) throw new Error(d.error.message);
  const c = checkVmImage(d.value, publicKeyVmImageVerifier(ed25519KeyPairFromSeed(seed).publicKey), {
    vm: FIXTURE_VM.name,
    vmId: FIXTURE_VM.vmId,
    kind: 'hibernate',
  });
  if (!c.ok) throw new Error(c.error.message);
  return c.value;
}

test('the stored version 2 image still decodes and checks with its signing key', (t) => {
  const image = checkedImage();
  t.is(image.header.version, 2);
  t.deepEqual(
    image.header.sections.map((s) => s.name),
    ['core', 'memory', 'verifier', 'vmm', 'guest'],
  );
});

test('the stored image restores into a fresh VM: memory, every protection, the VMM state', (t) => {
  const state = decodeVmState(checkedImage());
  if (!state.ok) throw new Error(state.error);
  const vmm = emptyFixtureVmm(seed);
  const r = applyVmState(vmm, 'hibernate', state.value);
  t.deepEqual(r, { ok: true, value: { pages: 3 } });
  t.is(vmm.core.pins.get(0), 1n << 16n);
  t.is(vmm.core.pins.get(4), (1n << 20n) | (1n << 21n));
  const saved = vmm.core.saveState();
  if (!saved.ok) throw new Error(saved.error.message);
  t.deepEqual(saved.value.msrFilter, { defaultAction: 'allow', ranges: [{ flags: 3, base: 0xc000_0080, nmsrs: 8, bitmap: Uint8Array.of(0xfe) }] });
  t.deepEqual(saved.value.crFilter, { cr0: 1n << 16n, cr4: 1n << 20n, cr3: false, descriptorTables: true });
  t.deepEqual(saved.value.ept, [[0x100, 16, EPT_R | EPT_IMMUTABLE]]);
  for (const frame of [0, 0x100, 0x3ff]) {
    const page = vmm.hostMemory.copyFromGuest('snapshot', gpa(BigInt(frame) * 4096n), 4096);
    t.true(page.ok && page.value.every((b, i) => b === ((i * 7 + frame) & 0xff)), `page ${frame} is back`);
  }
  t.true(vmm.platformPinned);
  t.deepEqual(vmm.staged('crash'), { image: Uint8Array.of(0x4d, 0x5a, 1, 2), manifest: 'manifest text', sha256: 'ab'.repeat(32), request: 41 });
  t.is(vmm.staged('kexec'), undefined);
});

test("the stored image's verifier and guest sections still read back", (t) => {
  const image = checkedImage();
  const v = decodeVerifierSection(image.sections.get('verifier')!);
  if (!v.ok) throw new Error(v.error);
  t.true(v.value.bootVerified);
  const crc7 = v.value.modules.get('crc7')!;
  t.is(crc7.exports.get('crc7_be'), 0xffffffffc0001000n);
  t.deepEqual(crc7.jumpEntries.get(0xffffffffc0001020n), { target: 0xffffffffc0001040n, len: 5 });
  t.deepEqual([...(crc7.functions ?? [])], [0xffffffffc0001000n]);
  t.is(crc7.smpLocks, undefined);
  t.deepEqual(v.value.pluginState.get('kprobe'), { sites: new Map([[0xffffffff81000000n, Uint8Array.of(0x0f, 0x1f)]]), $odd: -1n });
  t.is(v.value.manifest, undefined);
  const g = decodeSection(GUEST_SECTION, image.sections.get('guest')!);
  if (!g.ok) throw new Error(g.error);
  t.is(g.value.stext, 0xffffffff81000000n);
  t.deepEqual(g.value.frames.used, Uint8Array.of(1, 1, 0, 1));
  t.deepEqual(g.value.staticCalls, [[0xffffffff81000300n, null]]);
  t.is(g.value.modules.loaded[0]!.init, undefined);
  t.is(g.value.bootCpuData.vendorId.length, 12);
});
