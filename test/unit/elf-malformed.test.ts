/**
 * The ELF64 reader on a small hand-built relocatable object: it decodes what is there, and
 * every malformation gives the named, typed error instead of a throw.
 */

import test from 'ava';
import fc from 'fast-check';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';
import { parseElf64 } from '../../shared/elf/elf64.ts';
import type { ElfErrorKind } from '../../shared/elf/errors.ts';
import {
  EM_X86_64,
  ET_REL,
  R_X86_64_PLT32,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHF_INFO_LINK,
  SHT_PROGBITS,
  SHT_RELA,
  SHT_STRTAB,
  SHT_SYMTAB,
  STB_GLOBAL,
  STT_FUNC,
  STT_NOTYPE,
} from '../../shared/elf/types.ts';

interface Built {
  bytes: Uint8Array;
  /** File offset of section header `i`. */
  shdr(i: number): number;
  /** File offset of symbol `i`. */
  sym(i: number): number;
  /** File offset of the relocation entry. */
  rela: number;
}

function strtab(names: string[]): { bytes: Uint8Array; offsets: number[] } {
  const offsets: number[] = [];
  const parts: number[] = [0];
  for (const n of names) {
    offsets.push(parts.length);
    for (const c of n) parts.push(c.charCodeAt(0));
    parts.push(0);
  }
  return { bytes: Uint8Array.from(parts), offsets };
}

/** Sections: 0 null, 1 .text, 2 .symtab, 3 .strtab, 4 .rela.text, 5 .shstrtab. */
function build(): Built {
  const text = Uint8Array.from([0xe8, 0, 0, 0, 0, 0xc3, 0x90, 0x90]);
  const str = strtab(['foo', '__fentry__']);
  const shstr = strtab(['.text', '.symtab', '.strtab', '.rela.text', '.shstrtab']);
  const align8 = (n: number) => (n + 7) & ~7;
  const textOff = 64;
  const strOff = textOff + text.length;
  const shstrOff = strOff + str.bytes.length;
  const symOff = align8(shstrOff + shstr.bytes.length);
  const relaOff = symOff + 3 * 24;
  const shoff = relaOff + 24;
  const total = shoff + 6 * 64;
  const bytes = new Uint8Array(total);
  const dv = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  dv.setUint16(16, ET_REL, true);
  dv.setUint16(18, EM_X86_64, true);
  dv.setUint32(20, 1, true);
  dv.setBigUint64(40, BigInt(shoff), true);
  dv.setUint16(52, 64, true);
  dv.setUint16(58, 64, true);
  dv.setUint16(60, 6, true);
  dv.setUint16(62, 5, true);
  bytes.set(text, textOff);
  bytes.set(str.bytes, strOff);
  bytes.set(shstr.bytes, shstrOff);
  // symbol 1: foo, FUNC GLOBAL in .text, size 6; symbol 2: __fentry__ undefined.
  const s1 = symOff + 24;
  dv.setUint32(s1, str.offsets[0]!, true);
  dv.setUint8(s1 + 4, (STB_GLOBAL << 4) | STT_FUNC);
  dv.setUint16(s1 + 6, 1, true);
  dv.setBigUint64(s1 + 16, 6n, true);
  const s2 = symOff + 48;
  dv.setUint32(s2, str.offsets[1]!, true);
  dv.setUint8(s2 + 4, (STB_GLOBAL << 4) | STT_NOTYPE);
  // rela: offset 1, PLT32 against symbol 2, addend -4.
  dv.setBigUint64(relaOff, 1n, true);
  dv.setUint32(relaOff + 8, R_X86_64_PLT32, true);
  dv.setUint32(relaOff + 12, 2, true);
  dv.setBigInt64(relaOff + 16, -4n, true);
  const sh = (i: number, name: number, type: number, flags: number, off: number, size: number, link: number, info: number, align: number, entsize: number) => {
    const at = shoff + i * 64;
    dv.setUint32(at, name, true);
    dv.setUint32(at + 4, type, true);
    dv.setBigUint64(at + 8, BigInt(flags), true);
    dv.setBigUint64(at + 24, BigInt(off), true);
    dv.setBigUint64(at + 32, BigInt(size), true);
    dv.setUint32(at + 40, link, true);
    dv.setUint32(at + 44, info, true);
    dv.setBigUint64(at + 48, BigInt(align), true);
    dv.setBigUint64(at + 56, BigInt(entsize), true);
  };
  sh(1, shstr.offsets[0]!, SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, textOff, text.length, 0, 0, 16, 0);
  sh(2, shstr.offsets[1]!, SHT_SYMTAB, 0, symOff, 72, 3, 2, 8, 24);
  sh(3, shstr.offsets[2]!, SHT_STRTAB, 0, strOff, str.bytes.length, 0, 0, 1, 0);
  sh(4, shstr.offsets[3]!, SHT_RELA, SHF_INFO_LINK, relaOff, 24, 2, 1, 8, 24);
  sh(5, shstr.offsets[4]!, SHT_STRTAB, 0, shstrOff, shstr.bytes.length, 0, 0, 1, 0);
  return { bytes, shdr: (i) => shoff + i * 64, sym: (i) => symOff + i * 24, rela: relaOff };
}

function mutate(f: (b: Built, dv: DataView) => void): Uint8Array {
  const b = build();
  f(b, new DataView(b.bytes.buffer));
  return b.bytes;
}

function expectError(t: import('ava').ExecutionContext, bytes: Uint8Array, kind: ElfErrorKind, message: RegExp): void {
  const r = parseElf64(bytes);
  if (r.ok) {
    t.fail(`expected ${kind}, got a parsed image`);
    return;
  }
  t.is(r.error.kind, kind);
  t.regex(r.error.message, message);
}

test('a well-formed object decodes sections, symbols and relocations', (t) => {
  const r = parseElf64(build().bytes);
  if (!r.ok) return t.fail(r.error.message);
  const e = r.value;
  t.is(e.type, ET_REL);
  t.deepEqual(
    e.sections.map((s) => s.name),
    ['', '.text', '.symtab', '.strtab', '.rela.text', '.shstrtab'],
  );
  const text = e.sectionByName('.text');
  if (text === undefined) return t.fail('no .text');
  t.deepEqual([...e.sectionBytes(text)], [0xe8, 0, 0, 0, 0, 0xc3, 0x90, 0x90]);
  t.is(e.sectionBytes(text).buffer, e.bytes.buffer, 'sectionBytes is a view, not a copy');
  t.deepEqual(
    e.symbols.map((s) => [s.name, s.type, s.bind, s.shndx, s.size]),
    [
      ['', 0, 0, 0, 0],
      ['foo', STT_FUNC, STB_GLOBAL, 1, 6],
      ['__fentry__', STT_NOTYPE, STB_GLOBAL, 0, 0],
    ],
  );
  t.is(e.relocations.length, 1);
  t.like(e.relocations[0], { name: '.rela.text', appliesTo: 1, symtab: 2 });
  t.deepEqual(e.relocations[0]?.entries, [{ offset: 1n, type: R_X86_64_PLT32, symIndex: 2, addend: -4n }]);
  t.is(e.programHeaders.length, 0);
});

test('extended section numbering (e_shnum 0, count in section 0 sh_size) is honoured', (t) => {
  const bytes = mutate((b, dv) => {
    dv.setUint16(60, 0, true);
    dv.setBigUint64(b.shdr(0) + 32, 6n, true);
  });
  const r = parseElf64(bytes);
  t.true(r.ok);
  if (r.ok) t.is(r.value.sections.length, 6);
});

test('bad magic', (t) =>
  expectError(
    t,
    mutate((b) => (b.bytes[1] = 0x46)),
    'bad-magic',
    /bad magic/,
  ));
test('empty input is a truncated header', (t) => expectError(t, new Uint8Array(0), 'truncated-header', /truncated header/));
test('not ELFCLASS64', (t) =>
  expectError(
    t,
    mutate((b) => (b.bytes[4] = 1)),
    'not-elfclass64',
    /not ELFCLASS64/,
  ));
test('not little-endian', (t) =>
  expectError(
    t,
    mutate((b) => (b.bytes[5] = 2)),
    'not-little-endian',
    /not little-endian/,
  ));
test('truncated header', (t) => expectError(t, build().bytes.subarray(0, 40), 'truncated-header', /truncated header: 40 bytes/));
test('wrong machine', (t) =>
  expectError(
    t,
    mutate((_b, dv) => dv.setUint16(18, 3, true)),
    'wrong-machine',
    /wrong machine 3/,
  ));
test('section header table out of bounds (offset)', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setBigUint64(40, BigInt(b.bytes.length - 10), true)),
    'section-table-out-of-bounds',
    /section header table out of bounds/,
  ));
test('section header table out of bounds (count)', (t) =>
  expectError(
    t,
    mutate((_b, dv) => dv.setUint16(60, 0xfff0, true)),
    'section-table-out-of-bounds',
    /65520 headers/,
  ));
test('section data out of bounds names the section', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setBigUint64(b.shdr(1) + 32, 1n << 40n, true)),
    'section-out-of-bounds',
    /section data out of bounds for section 1/,
  ));
test('section offset beyond 2^53', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setBigUint64(b.shdr(3) + 24, 1n << 60n, true)),
    'section-out-of-bounds',
    /section 3/,
  ));
test('bad string table index (out of range)', (t) =>
  expectError(
    t,
    mutate((_b, dv) => dv.setUint16(62, 99, true)),
    'bad-string-table-index',
    /bad string table index 99/,
  ));
test('bad string table index (not a string table)', (t) =>
  expectError(
    t,
    mutate((_b, dv) => dv.setUint16(62, 1, true)),
    'bad-string-table-index',
    /not SHT_STRTAB/,
  ));
test('section name offset outside the string table', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setUint32(b.shdr(2), 5000, true)),
    'bad-section-name',
    /section 2 name offset 5000/,
  ));
test('sh_link beyond the section count', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setUint32(b.shdr(2) + 40, 77, true)),
    'bad-section-link',
    /sh_link 77/,
  ));
test('symbol table entsize wrong', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setBigUint64(b.shdr(2) + 56, 16n, true)),
    'symtab-entsize',
    /symbol table entsize wrong/,
  ));
test('symbol table linked to a non-string table', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setUint32(b.shdr(2) + 40, 1, true)),
    'bad-section-link',
    /not a string table/,
  ));
test('symbol name outside its string table', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setUint32(b.sym(1), 9999, true)),
    'bad-symbol-name',
    /symbol 1 .* name offset 9999/,
  ));
test('symbol section index beyond the sections', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setUint16(b.sym(1) + 6, 40, true)),
    'bad-symbol-shndx',
    /symbol 1 \(foo\) has section index 40/,
  ));
test('rela entsize wrong', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setBigUint64(b.shdr(4) + 56, 16n, true)),
    'rela-entsize',
    /rela entsize wrong/,
  ));
test('rela symbol index out of range', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setUint32(b.rela + 12, 7, true)),
    'rela-bad-symbol',
    /references symbol 7/,
  ));
test('rela patching past its target section', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setBigUint64(b.rela, 6n, true)),
    'rela-offset-out-of-bounds',
    /offset 6 .*\.text/,
  ));
test('rela target section missing', (t) =>
  expectError(
    t,
    mutate((b, dv) => dv.setUint32(b.shdr(4) + 44, 42, true)),
    'rela-bad-target',
    /applies to section 42/,
  ));

test('random corruption never throws and always yields a Result', async (t) => {
  const base = build().bytes;
  await checkProperty(
    t,
    'random corruption never throws and always yields a Result',
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
      fc.nat(base.length),
      (edits, cut) => {
        const b = base.slice(0, Math.max(cut, 1));
        for (const [i, v] of edits) if (i < b.length) b[i] = v;
        const r = parseElf64(b);
        return r.ok || (typeof r.error.message === 'string' && r.error.message.length > 0);
      },
    ),
    scaledRuns(3000),
  );
});
