import test from 'ava';
import { gpa } from '../../shared/addr.ts';
import { GuestMemory } from '../../hypervisor/memory/guest-memory.ts';

test('a 64 GiB guest costs memory only for the pages it touches', (t) => {
  const mem = new GuestMemory(64n << 30n);
  t.is(mem.frames, 16 * 1024 * 1024);
  t.is(mem.residentPages(), 0);
  mem.write(gpa(0x1000n), Uint8Array.of(1));
  mem.write(gpa((64n << 30n) - 1n), Uint8Array.of(2));
  mem.write(gpa(32n << 30n), new Uint8Array(8192).fill(3)); // two pages
  t.is(mem.residentPages(), 4);
  t.deepEqual(mem.residentFrames(), [1, 8 * 1024 * 1024, 8 * 1024 * 1024 + 1, 16 * 1024 * 1024 - 1]);
});

test('untouched memory reads as zero and reading allocates nothing', (t) => {
  const mem = new GuestMemory(1n << 30n);
  t.deepEqual([...mem.read(gpa(0x12345n), 16)], new Array(16).fill(0));
  t.is(mem.residentPages(), 0);
});

test('writing zeros to untouched pages stays sparse', (t) => {
  const mem = new GuestMemory(1n << 30n);
  mem.write(gpa(0n), new Uint8Array(3 * 4096));
  t.is(mem.residentPages(), 0);
});

test('accesses that cross page boundaries read back what was written', (t) => {
  const mem = new GuestMemory(1n << 20n);
  const bytes = Uint8Array.from({ length: 10000 }, (_, i) => i & 0xff);
  mem.write(gpa(0xffan), bytes);
  t.deepEqual(mem.read(gpa(0xffan), 10000), bytes);
  mem.writeU64(gpa(0x1ffcn), 0x1122334455667788n);
  t.is(mem.readU64(gpa(0x1ffcn)), 0x1122334455667788n);
});

test('accesses outside guest memory throw a RangeError naming the range', (t) => {
  const mem = new GuestMemory(1n << 20n);
  t.throws(() => mem.read(gpa((1n << 20n) - 4n), 8), { instanceOf: RangeError, message: /outside guest memory/ });
  t.throws(() => mem.write(gpa(-1n), Uint8Array.of(1)), { instanceOf: RangeError });
  t.false(mem.contains(gpa(1n << 20n), 1));
  t.true(mem.contains(gpa((1n << 20n) - 1n), 1));
});

test('a size that is not a multiple of 4 KiB is refused', (t) => {
  t.throws(() => new GuestMemory(4097n), { instanceOf: RangeError, message: /multiple of 4 KiB/ });
  t.throws(() => new GuestMemory(0n), { instanceOf: RangeError });
});
