/** `.modinfo` parsing: key=value strings, NUL padding, repeated keys, depends lists, errors. */
import test from 'ava';
import { parseModinfo } from '../../shared/module/modinfo.ts';
import { needsFixtures } from '../helpers/fixtures.ts';
import { fixtureModulesInDependencyOrder } from './module-fixture-chain.ts';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

test('entries, NUL padding and repeated keys', (t) => {
  const r = parseModinfo(enc('license=GPL\0\0\0alias=a\0alias=b\0depends=\0name=m\0vermagic=6.1.0 SMP mod_unload\0intree=Y\0'));
  t.true(r.ok);
  if (!r.ok) return;
  t.is(r.value.name, 'm');
  t.is(r.value.license, 'GPL');
  t.deepEqual(r.value.depends, []);
  t.deepEqual(r.value.entries.get('alias'), ['a', 'b']);
  t.is(r.value.vermagic, '6.1.0 SMP mod_unload');
  t.true(r.value.intree);
  t.false(r.value.retpoline);
  t.is(r.value.get('missing'), undefined);
});

test('depends is a comma list; a value may hold "="', (t) => {
  const r = parseModinfo(enc('depends=a,b,c\0parm=x:y=z\0'));
  t.true(r.ok);
  if (!r.ok) return;
  t.deepEqual(r.value.depends, ['a', 'b', 'c']);
  t.is(r.value.get('parm'), 'x:y=z');
  t.is(r.value.name, undefined);
});

test('an entry that is not key=value is refused, naming it', (t) => {
  const r = parseModinfo(enc('name=x\0garbage\0'));
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'modinfo');
    t.regex(r.error.message, /"garbage" is not key=value/);
  }
  const r2 = parseModinfo(enc('=value\0'));
  t.false(r2.ok);
});

test('an empty section has no entries', (t) => {
  const r = parseModinfo(new Uint8Array(0));
  t.true(r.ok);
  if (r.ok) t.is(r.value.entries.size, 0);
});

needsFixtures(test)('the fixture modules name themselves and their dependencies', (t) => {
  const mods = Object.fromEntries(fixtureModulesInDependencyOrder().map((m) => [m.file, m]));
  t.is(mods['virtio_net']!.name, 'virtio_net');
  t.deepEqual(mods['net_failover']!.depends, ['failover']);
  t.deepEqual(mods['kvm']!.depends, ['irqbypass']);
  t.deepEqual(mods['virtio']!.depends, ['virtio_ring']);
});
