/**
 * The branded address constructors and helpers (shared/addr.ts): what every boundary relies on
 * when it turns a guest's value into an address, and what the helpers do at the edges of the
 * address space.
 */
import test from 'ava';
// t.is<unknown, unknown>: the branded results are compared with plain literals.
import {
  MAX_GFN,
  MAX_PHYS_ADDR,
  framesOfRange,
  gfn,
  gfnAdd,
  gfnToGpa,
  gpa,
  gpaAdd,
  gpaInFrame,
  gpaPageBase,
  gpaToGfn,
  gva,
  gvaAdd,
  gvaFromRegister,
  gvaPageNumber,
  isAddrError,
  tryGfn,
  tryGpa,
  tryGva,
} from '../../shared/addr.ts';

test('tryGpa accepts [0, 2^52) and names why anything else is not a guest-physical address', (t) => {
  t.is<unknown, unknown>(tryGpa(0n), 0n);
  t.is<unknown, unknown>(tryGpa(MAX_PHYS_ADDR - 1n), MAX_PHYS_ADDR - 1n);
  t.like(tryGpa(-1n), { kind: 'negative' });
  t.like(tryGpa(MAX_PHYS_ADDR), { kind: 'beyond-maxphyaddr' });
  t.true(isAddrError(tryGpa(1n << 63n)));
  t.false(isAddrError(tryGpa(0x1000n)));
});

test('tryGva accepts both canonical halves and refuses the hole, negatives and values past 2^64', (t) => {
  t.is<unknown, unknown>(tryGva(0x0000_7fff_ffff_ffffn), 0x0000_7fff_ffff_ffffn);
  t.is<unknown, unknown>(tryGva(0xffff_8000_0000_0000n), 0xffff_8000_0000_0000n);
  t.like(tryGva(0x0000_8000_0000_0000n), { kind: 'non-canonical' });
  t.like(tryGva(-1n), { kind: 'negative' });
  t.like(tryGva(1n << 64n), { kind: 'non-canonical' });
});

test('tryGfn accepts integers below 2^40 only', (t) => {
  t.is<unknown, unknown>(tryGfn(0), 0);
  t.is<unknown, unknown>(tryGfn(MAX_GFN - 1), MAX_GFN - 1);
  for (const bad of [-1, MAX_GFN, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) t.like(tryGfn(bad), { kind: 'bad-gfn' }, `${bad}`);
});

test('the throwing constructors throw a RangeError with the reason', (t) => {
  t.throws(() => gpa(MAX_PHYS_ADDR), { instanceOf: RangeError, message: /beyond the 52-bit physical address space/ });
  t.throws(() => gva(0x0000_8000_0000_0000n), { instanceOf: RangeError, message: /not canonical/ });
  t.throws(() => gfn(-1), { instanceOf: RangeError, message: /frame number -1/ });
});

test('frame and address conversions round-trip and keep the in-page offset', (t) => {
  const a = gpa(0x1234_5678n);
  t.is<unknown, unknown>(gpaToGfn(a), 0x12345);
  t.is<unknown, unknown>(gfnToGpa(gpaToGfn(a)), 0x1234_5000n);
  t.is<unknown, unknown>(gpaPageBase(a), 0x1234_5000n);
  t.is<unknown, unknown>(gpaInFrame(gfn(0x12345), 0x678), a);
  t.is<unknown, unknown>(gpaToGfn(gpa(MAX_PHYS_ADDR - 1n)), MAX_GFN - 1);
  t.throws(() => gpaInFrame(gfn(1), 4096), { instanceOf: RangeError, message: /in-page offset 4096/ });
});

test('the checked adds refuse to leave the address space', (t) => {
  t.is<unknown, unknown>(gpaAdd(gpa(0x1000n), 8), 0x1008n);
  t.throws(() => gpaAdd(gpa(MAX_PHYS_ADDR - 1n), 1), { instanceOf: RangeError });
  t.is<unknown, unknown>(gvaAdd(gva(0xffff_ffff_8100_0000n), 0x10n), 0xffff_ffff_8100_0010n);
  t.throws(() => gvaAdd(gva(0x0000_7fff_ffff_fff8n), 8), { instanceOf: RangeError, message: /not canonical/ });
  t.is<unknown, unknown>(gfnAdd(gfn(1), 1), 2);
  t.throws(() => gfnAdd(gfn(MAX_GFN - 1), 1), { instanceOf: RangeError });
});

test('framesOfRange covers every frame a byte range touches, and none for an empty range', (t) => {
  t.deepEqual(framesOfRange(0x1000n, 0x2000n), { first: 1, end: 2 });
  t.deepEqual(framesOfRange(0x1fffn, 0x2001n), { first: 1, end: 3 });
  t.deepEqual(framesOfRange(0x3000n, 0x3000n), { first: 3, end: 3 });
  t.deepEqual(framesOfRange(MAX_PHYS_ADDR - 0x1000n, MAX_PHYS_ADDR), { first: MAX_GFN - 1, end: MAX_GFN });
  t.throws(() => framesOfRange(-1n, 0x1000n), { instanceOf: RangeError });
  t.throws(() => framesOfRange(0n, MAX_PHYS_ADDR + 1n), { instanceOf: RangeError });
});

test('gvaFromRegister keeps the register value as it is, so the vCPU can refuse a non-canonical one', (t) => {
  t.is<unknown, unknown>(gvaFromRegister(0x0000_8000_0000_0000n), 0x0000_8000_0000_0000n);
  t.is<unknown, unknown>(gvaPageNumber(gva(0xffff_ffff_8100_1234n)), 0xffff_ffff_8100_1n);
});
