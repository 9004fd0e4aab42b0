/**
 * The ELF64 reader on the real signed Debian 6.1 modules (fixtures README): relocatable
 * x86-64 objects whose `__mcount_loc` and `__jump_table` relocation counts are known.
 */

import test from 'ava';
import { readdirSync } from 'node:fs';
import { parseElf64, type Elf64 } from '../../shared/elf/elf64.ts';
import { EM_X86_64, ET_REL, R_X86_64_64, R_X86_64_PLT32, SHT_RELA, STT_SECTION } from '../../shared/elf/types.ts';
import { fixtureModuleElf, fixtures, needsFixtures, readFixtureModule } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

function load(name: string): Elf64 {
  const r = parseElf64(fixtureModuleElf(name));
  if (!r.ok) throw new Error(`${name}: ${r.error.message}`);
  return r.value;
}

function relaCount(e: Elf64, name: string): number {
  return e.relocations.find((r) => r.name === name)?.entries.length ?? 0;
}

// From the fixtures README table.
const expected: Record<string, { mcount: number; jump: number }> = {
  crc7: { mcount: 0, jump: 0 },
  cordic: { mcount: 1, jump: 0 },
  irqbypass: { mcount: 6, jump: 0 },
  failover: { mcount: 7, jump: 0 },
  virtio_ring: { mcount: 57, jump: 30 },
  virtio_net: { mcount: 68, jump: 195 },
  kvm: { mcount: 1327, jump: 834 },
  'kvm-intel': { mcount: 314, jump: 2274 },
};

fixtureTest('crc7.ko is a relocatable x86-64 object with .rela.text and .modinfo', (t) => {
  const e = load('crc7');
  t.is(e.type, ET_REL);
  t.is(e.machine, EM_X86_64);
  t.is(e.programHeaders.length, 0);
  t.is(e.sectionByName('.rela.text')?.type, SHT_RELA);
  const modinfo = e.sectionByName('.modinfo');
  if (modinfo === undefined) return t.fail('no .modinfo');
  const text = new TextDecoder().decode(e.sectionBytes(modinfo));
  t.true(text.split('\0').includes('license=GPL'), text);
  t.true(e.symbols.some((s) => s.name === 'crc7_be'));
});

fixtureTest('__mcount_loc and __jump_table relocation counts match the README table', (t) => {
  for (const [name, want] of Object.entries(expected)) {
    const e = load(name);
    t.is(relaCount(e, '.rela__mcount_loc'), want.mcount, `${name} __mcount_loc`);
    t.is(relaCount(e, '.rela__jump_table'), want.jump, `${name} __jump_table`);
  }
});

fixtureTest('every virtio_ring mcount site is an e8 call with a PLT32 __fentry__-4 relocation at site+1', (t) => {
  const e = load('virtio_ring');
  const mcount = e.relocations.find((r) => r.name === '.rela__mcount_loc');
  if (mcount === undefined) return t.fail('no .rela__mcount_loc');
  for (const r of mcount.entries) {
    t.is(r.type, R_X86_64_64);
    const sym = e.symbols[r.symIndex];
    if (sym === undefined) return t.fail('bad symbol index');
    t.is(sym.type, STT_SECTION);
    const sec = e.sections[sym.shndx];
    if (sec === undefined) return t.fail('bad section');
    const site = Number(sym.value + r.addend);
    t.is(e.sectionBytes(sec)[site], 0xe8, `${sec.name}+${site}`);
    const textRela = e.relocations.find((x) => x.appliesTo === sec.index);
    const call = textRela?.entries.find((x) => x.offset === BigInt(site + 1));
    t.is(call?.type, R_X86_64_PLT32);
    t.is(call?.addend, -4n);
    t.is(e.symbols[call?.symIndex ?? 0]?.name, '__fentry__');
  }
});

fixtureTest('every fixture module parses', (t) => {
  const names = readdirSync(fixtures.modulesDir).filter((f) => f.endsWith('.ko'));
  t.true(names.length >= 10);
  for (const f of names) {
    const r = parseElf64(fixtureModuleElf(f.slice(0, -3)));
    t.true(r.ok, `${f}: ${r.ok ? '' : r.error.message}`);
  }
});

fixtureTest('trailing signature bytes after the section table do not change the parse', (t) => {
  const stripped = load('cordic');
  const whole = parseElf64(readFixtureModule('cordic'));
  if (!whole.ok) return t.fail(whole.error.message);
  t.true(whole.value.bytes.length > stripped.bytes.length);
  t.deepEqual(whole.value.sections, stripped.sections);
  t.deepEqual(whole.value.symbols, stripped.symbols);
});
