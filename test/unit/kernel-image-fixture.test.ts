/**
 * The kernel image built from the real Debian 6.1 vmlinuz and System.map matches the facts
 * recorded in the fixtures README: boundaries, ftrace sites, jump-label sites, exports.
 */

import test from 'ava';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

const FENTRY = 0xffffffff81076650n;

fixtureTest('section boundaries from System.map match the README', async (t) => {
  const k = await loadFixtureKernel();
  t.deepEqual(
    { ...k.boundaries },
    {
      _stext: 0xffffffff81000000n,
      _etext: 0xffffffff81e01d32n,
      __start_rodata: 0xffffffff82000000n,
      __end_rodata: 0xffffffff828eb000n,
      __start_ro_after_init: 0xffffffff82415730n,
      __end_ro_after_init: 0xffffffff82459a10n,
      _sdata: 0xffffffff82a00000n,
      _edata: 0xffffffff82c48980n,
      __init_begin: 0xffffffff83044000n,
      __init_end: 0xffffffff83306000n,
      __bss_start: 0xffffffff83310000n,
      __bss_stop: 0xffffffff84400000n,
      __fentry__: FENTRY,
    },
  );
});

fixtureTest('sections carry virtual and physical addresses from the PT_LOAD headers', async (t) => {
  const k = await loadFixtureKernel();
  t.is(k.sections.length, 38, '39 ELF sections minus the null one');
  const text = k.sectionByName('.text');
  t.like(text, { vaddr: 0xffffffff81000000n, paddr: 0x1000000n, size: 0xe01d32 });
  t.is(k.sectionByName('.data')?.paddr, 0x2a00000n);
  t.is(k.sectionByName('.init.text')?.paddr, 0x3079000n);
  t.is(k.sectionByName('.data..percpu')?.paddr, 0x3044000n);
  t.is(k.sectionByName('.shstrtab')?.paddr, undefined);
  t.is(text?.vaddr, k.boundaries._stext);
  t.is(BigInt(text!.size) + text!.vaddr, k.boundaries._etext);
  t.is(k.virtToPhys(0xffffffff81076650n), 0x1076650n);
  t.is(k.sectionAt(FENTRY)?.name, '.text');
});

fixtureTest('readVirt reads file bytes at kernel virtual addresses, and refuses what is not in the file', async (t) => {
  const k = await loadFixtureKernel();
  const text = k.sectionByName('.text')!;
  t.deepEqual(k.readVirt(text.vaddr + 0x100n, 16), text.bytes.subarray(0x100, 0x110));
  // With DYNAMIC_FTRACE __fentry__ only returns; under the retbleed mitigation that return is
  // `jmp __x86_return_thunk` (e9 rel32).
  const fentry = k.readVirt(FENTRY, 5)!;
  t.is(fentry[0], 0xe9);
  const rel = BigInt(new DataView(fentry.buffer, fentry.byteOffset + 1, 4).getInt32(0, true));
  t.is(k.symbolize(FENTRY + 5n + rel), '__x86_return_thunk');
  t.deepEqual(fentry, text.bytes.subarray(0x76650, 0x76655));
  // The last PT_LOAD (p_vaddr ffffffff83079000, p_filesz 0x1987000) stores .bss as zeros in the file.
  t.deepEqual([...(k.readVirt(k.boundaries.__bss_start, 8) ?? [])], [0, 0, 0, 0, 0, 0, 0, 0]);
  const segEnd = 0xffffffff83079000n + 0x1987000n;
  t.is(k.readVirt(segEnd - 4n, 4)?.length, 4);
  t.is(k.readVirt(segEnd - 4n, 5), undefined, 'past the end of the file-backed segment');
  t.is(k.readVirt(0x1000n, 4), undefined, 'not a kernel address');
  // The per-CPU image links at 0 but is loaded at __init_begin = __START_KERNEL_map + p_paddr.
  const percpu = k.sectionByName('.data..percpu')!;
  t.deepEqual(k.readVirt(k.boundaries.__init_begin, 64), percpu.bytes.subarray(0, 64));
  t.is(k.virtToPhys(k.boundaries.__init_begin), 0x3044000n);
  t.is(k.readVirt(k.boundaries._etext - 2n, 4)?.length, 4, 'reads may cross into segment padding');
});

fixtureTest('40,521 sorted mcount sites, 38,252 in .text and 2,269 in .init.text, all e8 calls to __fentry__', async (t) => {
  const k = await loadFixtureKernel();
  const sites = k.mcountSites;
  t.is(sites.length, 40521);
  const bySection = new Map<string, number>();
  for (const s of sites) bySection.set(s.section, (bySection.get(s.section) ?? 0) + 1);
  t.deepEqual(Object.fromEntries(bySection), { '.text': 38252, '.init.text': 2269 });
  t.true(sites.every((s) => s.insn === 'call' && s.target === FENTRY));
  t.true(sites.every((s, i) => i === 0 || sites[i - 1]!.address < s.address));
  t.is(k.readVirt(sites[0]!.address, 1)?.[0], 0xe8);
  // Sites sit at function entry: most are a symbol's own address in System.map.
  const atSymbol = sites.filter((s) => k.systemMap.containing(s.address)?.offset === 0n).length;
  t.true(atSymbol > 35000, `${atSymbol} sites at offset 0`);
});

fixtureTest('6,299 jump entries: 3,260 nop2, 2,835 nop5, 136 jmp8, 68 jmp32', async (t) => {
  const k = await loadFixtureKernel();
  const entries = k.jumpEntries;
  t.is(entries.length, 6299);
  const kinds = { nop2: 0, nop5: 0, jmp8: 0, jmp32: 0 };
  for (const e of entries) kinds[e.kind]++;
  t.deepEqual(kinds, { nop2: 3260, nop5: 2835, jmp8: 136, jmp32: 68 });
  t.true(entries.every((e) => e.length === (e.kind === 'nop2' || e.kind === 'jmp8' ? 2 : 5)));
  // An enabled site jumps exactly to the entry's target.
  t.true(entries.filter((e) => e.jumpsTo !== undefined).every((e) => e.jumpsTo === e.target));
  // Sites are in kernel text; keys are static_key objects in data.
  t.true(entries.every((e) => ['.text', '.init.text', '.altinstr_aux', '.exit.text'].includes(k.sectionAt(e.site)?.name ?? '')));
  t.true(entries.every((e) => (e.key & 7n) === 0n && k.sectionAt(e.key) !== undefined));
  const first = entries[0]!;
  t.is(k.symbolize(first.key), 'init_on_free');
  // Bit 1 of the raw key is the build-time "objtool NOPs this jmp" mark (CONFIG_HAVE_JUMP_LABEL_HACK).
  t.is(entries.filter((e) => e.flags & 2).length, 6095);
});

fixtureTest('10,503 exported symbols, each resolved to its own System.map address', async (t) => {
  const k = await loadFixtureKernel();
  t.is(k.exports.size, 10503);
  t.is(k.exports.get('_printk'), 0xffffffff81a07e3dn);
  t.is(k.exports.get('__fentry__'), FENTRY, '__fentry__ is exported for modules');
  t.false(k.exports.has('printk'), 'printk is a macro around _printk in 6.1');
  t.false(k.exports.has('startup_64'));
  for (const [name, address] of k.exports) {
    if (k.systemMap.address(name) !== address) return t.fail(`${name} resolves elsewhere`);
  }
});
