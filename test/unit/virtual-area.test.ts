/**
 * The guest's virtual address allocator: first fit with a guard page, allocation at a given
 * address (a module where the real kernel's module_alloc put it), and first fit that keeps
 * out of ranges claimed later by address (a module's init layout kept clear of the next
 * module's core).
 */
import test from 'ava';
import { VirtualArea } from '../../guest/mm/virtual-area.ts';

const P = 4096n;
const BASE = 0xffffffffc0000000n;

test('allocAt claims exactly the pages and the guard page, and refuses taken or unaligned memory', (t) => {
  const a = new VirtualArea(BASE, BASE + 100n * P);
  t.true(a.allocAt(BASE + 10n * P, 3));
  t.false(a.allocAt(BASE + 12n * P, 1), 'overlaps the allocation');
  t.false(a.allocAt(BASE + 13n * P, 1), "overlaps the allocation's guard page");
  t.false(a.allocAt(BASE + 8n * P, 2), 'its own guard page would be the allocation');
  t.true(a.allocAt(BASE + 14n * P, 1), 'right after the guard page');
  t.false(a.allocAt(BASE + 20n * P + 1n, 1), 'not page-aligned');
  t.false(a.allocAt(BASE + 99n * P, 1), 'the guard page would be past the end');
  // First fit still finds the hole before it.
  t.is(a.alloc(2), BASE);
  t.is(a.alloc(7), BASE + 16n * P, 'the hole at 3..9 is too small for 7 pages and a guard');
  t.is(a.alloc(6), BASE + 3n * P, 'it holds 6 and a guard');
});

test('alloc keeps out of the ranges to avoid, guard page included', (t) => {
  const a = new VirtualArea(BASE, BASE + 100n * P);
  // A later module's core at pages 2..4, with the guard page 5 its allocation needs.
  const avoid = [{ start: BASE + 2n * P, end: BASE + 6n * P }];
  t.is(a.alloc(1, avoid), BASE, 'page 0 and its guard page 1 are clear');
  t.is(a.alloc(1, avoid), BASE + 6n * P, 'nothing of it, guard included, lands in 2..5');
  t.true(a.allocAt(BASE + 2n * P, 3), 'the avoided range is still free for its owner');
  t.is(a.alloc(1, [{ start: BASE + 8n * P, end: BASE + 9n * P + 1n }]), BASE + 10n * P, 'a range ending one byte into page 9 avoids page 9');
  t.is(a.alloc(200, avoid), undefined);
});

test('freed memory is allocatable at its address again', (t) => {
  const a = new VirtualArea(BASE, BASE + 100n * P);
  t.true(a.allocAt(BASE + 40n * P, 4));
  a.free(BASE + 40n * P, 4);
  t.true(a.allocAt(BASE + 40n * P, 4));
  t.deepEqual(a.exportState(), [
    { start: BASE, end: BASE + 40n * P },
    { start: BASE + 45n * P, end: BASE + 100n * P },
  ]);
});
