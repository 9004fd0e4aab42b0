/**
 * System.map parsing: lookups with repeated names, address-to-symbol, symbol expressions,
 * and parse errors that name the line.
 */

import test from 'ava';
import { readFileSync } from 'node:fs';
import { parseSystemMap, resolveSymbolExpression, type SystemMap, type SystemMapError } from '../../shared/kernel-image/system-map.ts';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

const SAMPLE = `0000000000000000 D __per_cpu_start
ffffffff81000000 T _stext
ffffffff81000000 T startup_64
ffffffff81000100 t helper
ffffffff81000200 T do_work
ffffffff81000300 t helper
ffffffff81000400 T helper
ffffffff81000500 T _etext
`;

function parse(text: string): SystemMap {
  const r = parseSystemMap(text);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

test('lookup by name prefers the first global entry, and keeps every entry', (t) => {
  const m = parse(SAMPLE);
  t.is(m.symbols.length, 8);
  t.is(m.all('helper').length, 3);
  t.like(m.lookup('helper'), { address: 0xffffffff81000400n, type: 'T', line: 7 });
  t.like(m.lookup('_stext'), { address: 0xffffffff81000000n, type: 'T', line: 2 });
  t.is(m.address('nope'), undefined);
  const localsOnly = parse('ffffffff81000100 t a\nffffffff81000200 t a\n');
  t.is(localsOnly.address('a'), 0xffffffff81000100n, 'first entry when there is no global one');
});

test('symbolize finds the containing symbol by address', (t) => {
  const m = parse(SAMPLE);
  t.is(m.symbolize(0xffffffff81000000n), '_stext', 'first in file order among equal addresses');
  t.is(m.symbolize(0xffffffff81000010n), '_stext+0x10');
  t.is(m.symbolize(0xffffffff810001ffn), 'helper+0xff');
  t.is(m.symbolize(0xffffffff81000200n), 'do_work');
  t.is(m.symbolize(0xffffffff81000500n), '_etext');
  t.is(m.symbolize(0xffffffff81000501n), '0xffffffff81000501', 'past the last symbol');
  t.deepEqual(m.containing(0xffffffff81000234n)?.offset, 0x34n);
  t.true(m.byAddress.every((s, i) => i === 0 || m.byAddress[i - 1]!.address <= s.address));
});

test('resolveSymbolExpression handles name, name+off, name-off and plain addresses', (t) => {
  const m = parse(SAMPLE);
  const v = (e: string) => {
    const r = resolveSymbolExpression(m, e);
    return r.ok ? r.value : r.error.message;
  };
  t.is(v('_stext+0x10'), 0xffffffff81000010n);
  t.is(v('_stext + 16'), 0xffffffff81000010n);
  t.is(v('do_work-0x200'), 0xffffffff81000000n);
  t.is(v('helper'), 0xffffffff81000400n);
  t.is(v('0xffffffff81000001'), 0xffffffff81000001n);
  t.true(m.resolve('_etext').ok);
  const unknown = resolveSymbolExpression(m, 'no_such+0x10');
  t.false(unknown.ok);
  if (!unknown.ok) {
    t.is(unknown.error.kind, 'unknown-symbol');
    t.regex(unknown.error.message, /unknown symbol "no_such"/);
  }
  const bad = resolveSymbolExpression(m, '_stext+');
  t.false(bad.ok);
  if (!bad.ok) t.is(bad.error.kind, 'bad-expression');
  const negative = resolveSymbolExpression(m, '__per_cpu_start-1');
  t.false(negative.ok);
});

function expectLineError(t: import('ava').ExecutionContext, text: string, line: number, kind: SystemMapError['kind'], message: RegExp): void {
  const r = parseSystemMap(text);
  if (r.ok) {
    t.fail('expected a parse error');
    return;
  }
  t.is(r.error.kind, kind);
  t.is(r.error.line, line);
  t.regex(r.error.message, new RegExp(`^System.map line ${line}: `));
  t.regex(r.error.message, message);
}

test('parse errors name the line and the problem', (t) => {
  expectLineError(t, 'ffffffff81000000 T _stext\nffffffff8100zz00 T bad\n', 2, 'bad-address', /bad address "ffffffff8100zz00"/);
  expectLineError(t, 'ffffffff81000000 T _stext\n\nffffffff81000000 TT two\n', 3, 'bad-type', /bad symbol type "TT"/);
  expectLineError(t, 'ffffffff81000000 T\n', 1, 'syntax', /expected "<address> <type> <name>"/);
  expectLineError(t, 'ffffffff81000000 T a b\n', 1, 'syntax', /expected/);
  expectLineError(t, 'ffffffff810000000 T wide\n', 1, 'bad-address', /wider than 64 bits/);
  expectLineError(t, 'ffffffff81000000 % pct\n', 1, 'bad-type', /bad symbol type "%"/);
  const empty = parseSystemMap('\n\n');
  t.false(empty.ok);
  if (!empty.ok) t.is(empty.error.kind, 'empty');
});

fixtureTest('the fixture System.map: 94,280 entries with the README addresses', (t) => {
  const m = parse(readFileSync(fixtures.systemMap, 'utf8'));
  t.is(m.symbols.length, 94280);
  t.is(m.address('_stext'), 0xffffffff81000000n);
  t.is(m.address('__fentry__'), 0xffffffff81076650n);
  t.is(m.symbolize(0xffffffff81076655n), '__fentry__+0x5');
  t.is(m.symbols.filter((s) => s.name.startsWith('__ksymtab_')).length, 10503);
  const r = m.resolve('_stext+0x10');
  t.true(r.ok && r.value === 0xffffffff81000010n);
});
