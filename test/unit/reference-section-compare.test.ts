/**
 * How `heki reference check` reports one section: every byte compared, every differing byte
 * counted, and the first differing sites each named once with the table that owns it: a
 * touch-up site in text, an entry in a table section, a run of bytes no table owns.
 */
import test from 'ava';
import { compareSection } from '../../checks/reference/section-compare.ts';
import { SiteOwners } from '../../shared/x86/touchups/site-owner.ts';
import type { TouchupTables } from '../../shared/x86/touchups/tables.ts';

const BASE = 0xffffffffc0001000n;
const tables: TouchupTables = { paravirt: [], retpolines: [], returns: [BASE + 0x10n], alternatives: [], smpLocks: [], staticCalls: [] };
const owners = (): SiteOwners => new SiteOwners(tables);

test('text: a site is listed once however many of its bytes differ; a run no table owns is one entry', (t) => {
  const real = new Uint8Array(64);
  const ours = real.slice();
  ours.fill(0xcc, 0x10, 0x15); // all five bytes of the return site
  ours.fill(0x90, 0x20, 0x23); // three bytes nothing owns
  ours[0x30] = 1;
  const c = compareSection('.text', BASE, ours, real, owners);
  t.is(c.bytes, 64);
  t.is(c.differing, 9);
  t.deepEqual(c.first, [
    { addr: '0xffffffffc0001010', owner: 'return site 0xffffffffc0001010 (.return_sites)' },
    { addr: '0xffffffffc0001020', owner: 'no touch-up site' },
    { addr: '0xffffffffc0001030', owner: 'no touch-up site' },
  ]);
});

test('a table section: bytes are owned by their entries; the list stops at the limit, the count does not', (t) => {
  const real = new Uint8Array(160);
  const ours = real.map((_, i) => (i % 16 === 3 ? 1 : 0));
  let built = 0;
  const c = compareSection('__jump_table', BASE, ours, real, () => (built++, owners()), 4);
  t.is(c.differing, 10);
  t.is(c.first.length, 4);
  t.deepEqual(c.first[1], { addr: '0xffffffffc0001013', owner: '__jump_table entry 1 at 0xffffffffc0001010 (16-byte entries)' });
  t.is(built, 0, 'a table section needs no site index');
});

test('an equal section builds no site index', (t) => {
  const c = compareSection('.text', BASE, new Uint8Array(8), new Uint8Array(8), () => t.fail('built') as never);
  t.deepEqual(c, { bytes: 8, differing: 0, first: [] });
});
