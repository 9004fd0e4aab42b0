/**
 * Guest memory shared copy-on-write with a fork (GuestMemory.shareFrom) and the EPT copied
 * into one (Ept.copyFrom): what the fork of a booted VM relies on so that no write of one VM
 * is ever seen by another (machine/machine-fork.ts).
 */
import test from 'ava';
import { GuestMemory } from '../../hypervisor/memory/guest-memory.ts';
import { Ept } from '../../hypervisor/ept/ept.ts';
import { EPT_DEFAULT, EPT_IMMUTABLE, EPT_R } from '../../hypervisor/ept/permissions.ts';
import { gfn, gpa } from '../../shared/addr.ts';

const MiB = 1n << 20n;

function booted(): GuestMemory {
  const m = new GuestMemory(4n * MiB);
  m.write(gpa(0x1000n), Uint8Array.of(1, 2, 3));
  m.write(gpa(0x5000n), Uint8Array.of(9));
  return m;
}

test("a fork reads the parent's pages and shares their buffers until one of them writes", (t) => {
  const parent = booted();
  const fork = new GuestMemory(4n * MiB);
  fork.shareFrom(parent);
  t.deepEqual([...fork.read(gpa(0x1000n), 3)], [1, 2, 3]);
  t.deepEqual(fork.residentFrames(), [1, 5]);
  t.is(fork.sharedPages(), 2);
  t.is(parent.sharedPages(), 2);
});

test('every write path of a fork copies the page first: the parent and a sibling never see it', (t) => {
  const parent = booted();
  const a = new GuestMemory(4n * MiB);
  const b = new GuestMemory(4n * MiB);
  a.shareFrom(parent);
  b.shareFrom(parent);
  a.write(gpa(0x1000n), Uint8Array.of(0xaa));
  a.copyIn(gfn(1), 1, Uint8Array.of(0xbb), 0, 1);
  a.writeByte(gpa(0x1002n), 0xcc);
  a.writeStrided(gpa(0x5000n), 1, Uint8Array.of(0xdd));
  a.writeU64(gpa(0x3000n), 7n); // a page nobody had: the fork's own
  t.deepEqual([...a.read(gpa(0x1000n), 3)], [0xaa, 0xbb, 0xcc]);
  t.is(a.read(gpa(0x5000n), 1)[0], 0xdd);
  for (const other of [parent, b]) {
    t.deepEqual([...other.read(gpa(0x1000n), 3)], [1, 2, 3]);
    t.is(other.read(gpa(0x5000n), 1)[0], 9);
    t.is(other.readU64(gpa(0x3000n)), 0n);
  }
  t.is(a.sharedPages(), 0, 'both shared pages were copied, the new one is private');
  t.is(b.sharedPages(), 2);
});

test('a parent that writes after the fork copies too: the fork keeps the forked contents', (t) => {
  const parent = booted();
  const fork = new GuestMemory(4n * MiB);
  fork.shareFrom(parent);
  parent.write(gpa(0x1000n), Uint8Array.of(0x55));
  parent.discardFrames([gfn(5)]);
  t.is(fork.read(gpa(0x1000n), 1)[0], 1);
  t.is(fork.read(gpa(0x5000n), 1)[0], 9, 'a frame the parent dropped stays in the fork');
  fork.clear();
  t.is(parent.read(gpa(0x1000n), 1)[0], 0x55, "the fork's reset does not touch the parent");
});

test('sharing is refused into memory in use or of another size', (t) => {
  const parent = booted();
  t.throws(() => new GuestMemory(8n * MiB).shareFrom(parent), { instanceOf: RangeError });
  t.throws(() => booted().shareFrom(parent), { instanceOf: RangeError, message: /in use/ });
});

test('an EPT copy has every permission of the source, and later changes stay on their side', (t) => {
  const src = new Ept(2048);
  src.setRange(gfn(0), 600, EPT_R | EPT_IMMUTABLE);
  const copy = new Ept(2048);
  const gen = copy.generation;
  copy.copyFrom(src);
  t.deepEqual(copy.entries(), src.entries());
  t.true(copy.generation > gen, 'a TLB keyed on the generation sees the change');
  copy.set(gfn(3), EPT_DEFAULT);
  src.set(gfn(700), EPT_R);
  t.is(src.get(gfn(3)), EPT_R | EPT_IMMUTABLE);
  t.is(copy.get(gfn(700)), EPT_DEFAULT);
});

test('an EPT with a verification in flight (a frozen frame) is not copied', (t) => {
  const src = new Ept(1024);
  src.freeze(gfn(10));
  const copy = new Ept(1024);
  t.throws(() => copy.copyFrom(src), { instanceOf: RangeError, message: /frozen/ });
  t.deepEqual(copy.entries(), []);
  t.throws(() => new Ept(512).copyFrom(src), { instanceOf: RangeError });
});
