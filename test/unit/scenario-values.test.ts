/**
 * The value syntaxes of scenario files, parser by parser: integers, hex bytes, address
 * expressions, CR bit names, MSR and hypercall names, ftrace targets.
 */
import test from 'ava';
import {
  parseAddressExpr,
  parseCount,
  parseCrBits,
  parseFtraceTarget,
  parseHexBytes,
  parseHypercallNr,
  parseInteger,
  parseMsr,
  U64_MAX,
} from '../../scenario/values.ts';

const value = <T>(r: { ok: true; value: T } | { ok: false; error: string }): T => {
  if (!r.ok) throw new Error(r.error);
  return r.value;
};
const error = (r: { ok: boolean; error?: string }): string => (r.ok ? 'ok' : r.error!);

test('integers: decimal, hex, underscores, the 64-bit limit', (t) => {
  t.is(value(parseInteger('13')), 13n);
  t.is(value(parseInteger('0x0D')), 13n);
  t.is(value(parseInteger('0xffff_ffff_8100_0000')), 0xffffffff81000000n);
  t.is(value(parseInteger('0xffffffffffffffff')), U64_MAX);
  t.is(error(parseInteger('0x10000000000000000')), `must be at most 0xffffffffffffffff, got '0x10000000000000000'`);
  for (const bad of ['', '-1', '1.5', '0x', '0b101', '1e3', '_1', '0x_1', '1__0']) t.false(parseInteger(bad).ok, bad);
  t.is(value(parseCount('4', 1, 4)), 4);
  t.is(error(parseCount('5', 1, 4)), `must be between 1 and 4, got '5'`);
  t.is(error(parseCount('0', 1, 4)), `must be between 1 and 4, got '0'`);
});

test('hex bytes: compact or spaced, case-insensitive; no 0x, no odd digits', (t) => {
  t.deepEqual(value(parseHexBytes('0f1F44 00 00')), Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0));
  t.deepEqual(value(parseHexBytes(' 90 ')), Uint8Array.of(0x90));
  t.false(parseHexBytes('0x90').ok);
  t.false(parseHexBytes('9').ok);
  t.false(parseHexBytes('90 9').ok);
  t.false(parseHexBytes('gg').ok);
  t.is(error(parseHexBytes('9090', 1)), 'must be at most 1 bytes, got 2');
});

test('address expressions: hex, symbols, offsets; canonical spelling', (t) => {
  t.is(value(parseAddressExpr('0xFFFFFFFF81000000')), '0xffffffff81000000');
  t.is(value(parseAddressExpr('_stext')), '_stext');
  t.is(value(parseAddressExpr('_stext+0x10')), '_stext+0x10');
  t.is(value(parseAddressExpr('_stext + 16')), '_stext+0x10');
  t.is(value(parseAddressExpr('__pfx_foo.isra.0-8')), '__pfx_foo.isra.0-0x8');
  for (const bad of ['', '12', '1abc', 'a b', '_stext+', '+4', '_stext+0x10+1', 'a/b']) t.false(parseAddressExpr(bad).ok, bad);
  t.regex(error(parseAddressExpr('ffffffff81000000')), /looks like a hex address without 0x/);
  t.is(value(parseAddressExpr('deadbeef_fn')), 'deadbeef_fn');
});

test('CR bits: names in any case, | and lists, masks; per register', (t) => {
  t.is(value(parseCrBits(4, ['smep'])), 1n << 20n);
  t.is(value(parseCrBits(4, ['SMEP|SMAP', 'UMIP'])), (1n << 20n) | (1n << 21n) | (1n << 11n));
  t.is(value(parseCrBits(0, ['WP', '0x1'])), (1n << 16n) | 1n);
  t.is(value(parseCrBits(3, ['0x18'])), 0x18n);
  t.false(parseCrBits(0, ['SMEP']).ok);
  t.false(parseCrBits(3, ['PCD']).ok);
});

test('MSRs and hypercalls by name or number', (t) => {
  t.is(value(parseMsr('LSTAR')), 0xc0000082);
  t.is(value(parseMsr('msr_cstar')), 0xc0000083);
  t.is(value(parseMsr('IA32_FMASK')), 0xc0000084);
  t.is(value(parseMsr('0x176')), 0x176);
  t.false(parseMsr('LSTARX').ok);
  t.is(value(parseHypercallNr('KVM_HC_LOCK_CR_UPDATE')), 13);
  t.is(value(parseHypercallNr('heki_load_code')), 20);
  t.is(value(parseHypercallNr('0x63')), 99);
  t.false(parseHypercallNr('KVM_HC_VAPIC_POLL_IRQ').ok);
});

test('ftrace targets: all, globs, symbols', (t) => {
  for (const ok of ['all', 'tcp_*', 'vfs_read', 'ext4_?et*', '[a-c]*']) t.is(value(parseFtraceTarget(ok)), ok);
  for (const bad of ['', 'a b', 'a/b']) t.false(parseFtraceTarget(bad).ok, bad);
});
