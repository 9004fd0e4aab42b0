/**
 * Static calls of the kernel image (shared/kernel-image/static-calls.ts): the instruction
 * decoder on hand-made bytes, and on the real Debian 6.1 image the facts measured from the
 * file: 4,085 `.static_call_sites` entries (4,058 `call`, 27 tail `jmp`, all to their key's
 * trampoline), 686 keys with signed `e9 rel32` trampolines, and the kernel's function entries.
 */
import test from 'ava';
import { decodeStaticCallInsn, textFunctionEntries, STATIC_CALL_SITE_TAIL } from '../../shared/kernel-image/static-calls.ts';
import { parseSystemMap } from '../../shared/kernel-image/system-map.ts';
import { encodeCall32, encodeJmp32 } from '../../shared/x86/patch-encodings.ts';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);
const SITE = 0xffffffff81000100n;

test('decodeStaticCallInsn: call, jmp, NOP5, the return0 xor, ret, and anything else', (t) => {
  t.deepEqual(decodeStaticCallInsn(SITE, encodeCall32(SITE, 0xffffffff81e00010n)), { kind: 'call', target: 0xffffffff81e00010n });
  t.deepEqual(decodeStaticCallInsn(SITE, encodeJmp32(SITE, SITE - 0x100n)), { kind: 'jmp', target: SITE - 0x100n });
  t.deepEqual(decodeStaticCallInsn(SITE, Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00)), { kind: 'nop5', target: undefined });
  t.deepEqual(decodeStaticCallInsn(SITE, Uint8Array.of(0x2e, 0x2e, 0x2e, 0x31, 0xc0)), { kind: 'xor5rax', target: undefined });
  t.deepEqual(decodeStaticCallInsn(SITE, Uint8Array.of(0xc3, 0xcc, 0xcc, 0xcc, 0xcc)), { kind: 'ret', target: undefined });
  t.is(decodeStaticCallInsn(SITE, Uint8Array.of(0x90, 0x90, 0x90, 0x90, 0x90)).kind, 'other');
  t.is(decodeStaticCallInsn(SITE, Uint8Array.of(0xe8, 0, 0)).kind, 'other', 'too short');
});

test('textFunctionEntries: distinct T/t/W addresses in [start, end), sorted', (t) => {
  const map = parseSystemMap(
    [
      'ffffffff81000000 T _stext',
      'ffffffff81000000 T startup_64',
      'ffffffff81000040 t helper',
      'ffffffff81000080 W weak_fn',
      'ffffffff810000c0 D not_text',
      'ffffffff81000100 T _etext',
    ].join('\n'),
  );
  if (!map.ok) throw new Error(map.error.message);
  t.deepEqual(textFunctionEntries(map.value, 0xffffffff81000000n, 0xffffffff81000100n), [0xffffffff81000000n, 0xffffffff81000040n, 0xffffffff81000080n]);
});

fixtureTest('the fixture has 4,085 static call sites: 4,058 call and 27 tail jmp, every one to its key trampoline', async (t) => {
  const k = await loadFixtureKernel();
  const { sites, keys } = k.staticCalls;
  t.is(sites.length, 4085);
  const kinds: Record<string, number> = {};
  for (const s of sites) kinds[`${s.kind}${s.tail ? '/tail' : ''}`] = (kinds[`${s.kind}${s.tail ? '/tail' : ''}`] ?? 0) + 1;
  t.deepEqual(kinds, { call: 4058, 'jmp/tail': 27 }, 'no NOP, xor, ret or other bytes in the file');
  t.true(
    sites.every((s) => (s.flags & ~STATIC_CALL_SITE_TAIL) === 0),
    'the INIT flag is set at boot, never in the file',
  );
  const tramp = new Map(keys.map((x) => [x.key, x.trampoline]));
  t.is(sites.filter((s) => s.target === tramp.get(s.key)).length, 4085, 'the compiler called __SCT__<name>');
  t.deepEqual(
    { text: sites.filter((s) => s.section === '.text').length, init: sites.filter((s) => s.section === '.init.text').length },
    { text: 4013, init: 72 },
  );
  const start = k.systemMap.address('__start_static_call_sites')!;
  t.is(sites[0]!.entry, start);
  t.is(k.sectionAt(start)?.name, '.rodata', 'the table is ro_after_init data');
});

fixtureTest('686 keys, each with a signed e9 rel32 trampoline in .text; 656 of them have sites', async (t) => {
  const k = await loadFixtureKernel();
  const { keys } = k.staticCalls;
  t.is(keys.length, 686);
  t.true(
    keys.every((x) => x.signed && x.trampolineKind === 'jmp'),
    'every trampoline: jmp rel32, then ud1 %esp,%ecx',
  );
  t.true(keys.every((x) => k.sectionAt(x.trampoline)?.name === '.text'));
  t.is(keys.filter((x) => x.siteCount > 0).length, 656);
  t.is(
    keys.reduce((n, x) => n + x.siteCount, 0),
    4085,
  );
  const byName = new Map(keys.map((x) => [x.name, x]));
  const top = [...keys]
    .sort((a, b) => b.siteCount - a.siteCount)
    .slice(0, 4)
    .map((x) => [x.name, x.siteCount]);
  t.deepEqual(top, [
    ['preempt_schedule_notrace', 993],
    ['preempt_schedule', 781],
    ['might_resched', 592],
    ['cond_resched', 465],
  ]);
  // key->func and the trampoline agree: might_resched starts as __static_call_return0 (PREEMPT_DYNAMIC, full).
  const mr = byName.get('might_resched')!;
  t.is(mr.func, k.systemMap.address('__static_call_return0'));
  t.is(mr.trampolineTarget, mr.func);
  // A NULL key's trampoline returns through the return thunk (CONFIG_RETHUNK).
  const nul = keys.find((x) => x.func === 0n)!;
  t.is(nul.trampolineTarget, k.systemMap.address('__x86_return_thunk'));
  t.is(keys.filter((x) => x.func !== 0n && x.trampolineTarget !== x.func).length, 0, 'every non-NULL trampoline jumps to key->func');
});

fixtureTest('kernel function entry points: 47,001 distinct text-symbol addresses in [_stext, _etext)', async (t) => {
  const k = await loadFixtureKernel();
  const f = textFunctionEntries(k.systemMap, k.boundaries._stext, k.boundaries._etext);
  t.is(f.length, 47001);
  t.true(f.every((a, i) => i === 0 || a > f[i - 1]!));
  t.true(f.includes(k.systemMap.address('__cond_resched')!));
  t.false(f.includes(k.systemMap.address('jiffies')!));
});
