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

test('a freed hole is the next allocation that fits, lowest first (freed init memory reused by the next core)', (t) => {
  const a = new VirtualArea(BASE, BASE + 100n * P);
  t.is(a.alloc(3), BASE, 'core: pages 0..2, guard 3');
  t.is(a.alloc(2), BASE + 4n * P, 'init: pages 4..5, guard 6');
  t.is(a.alloc(1), BASE + 7n * P, 'another: page 7, guard 8');
  a.free(BASE + 4n * P, 2);
  t.is(a.alloc(4), BASE + 9n * P, 'the freed hole 4..6 holds 2 pages and a guard, not 4');
  t.is(a.alloc(2), BASE + 4n * P, 'the next that fits takes the freed init memory');
  t.is(a.alloc(200), undefined);
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
