/**
 * Relocation, symbol resolution, ftrace sites, jump entries and exports on hand-built modules:
 * each R_X86_64 type the 6.1 loader applies computes its value, and every refusal of
 * apply_relocate_add() / simplify_symbols() / ftrace_make_nop() is a named error. Malformed
 * files give named errors and never a throw.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';
import { SHN_COMMON, STB_WEAK, R_X86_64_GOTPCREL } from '../../shared/elf/types.ts';
import { MODULES_VADDR, buildModuleImage, type ModuleImage, type ModuleError } from '../../shared/module/index.ts';
import { appendModuleSignature, PKEY_ID_PKCS7 } from '../../shared/module-signature.ts';
import { WA, syntheticModule, synthResolve, SYNTH_FENTRY, SYNTH_KEY, type RelaSpec, type SymbolSpec } from './module-elf-builder.ts';

const BASE = MODULES_VADDR + 0x10000n;
const INIT = MODULES_VADDR + 0x100000n;
const EXT = 0xffffffff81234560n;

function build(file: Uint8Array, resolve = (n: string) => (n === 'ext' ? EXT : synthResolve(n))): ReturnType<typeof buildModuleImage> {
  return buildModuleImage(file, { base: BASE, initBase: INIT, fentry: SYNTH_FENTRY, resolve });
}

function ok(r: ReturnType<typeof buildModuleImage>): ModuleImage {
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function bad(r: ReturnType<typeof buildModuleImage>): ModuleError {
  if (r.ok) throw new Error('expected an error');
  return r.error;
}

/** A module with a 32-byte `.data.t` (zeros unless `data`) and relocations into it. */
function withRelocs(relocs: RelaSpec[], symbols: SymbolSpec[] = [{ name: 'ext' }], data = new Uint8Array(32)): Uint8Array {
  return syntheticModule({ sections: [{ name: '.data.t', flags: WA, align: 8, data }], symbols, relocations: { '.data.t': relocs } });
}

const sectionOf = (m: ModuleImage, name: string) => m.sections.find((s) => s.name === name)!;
const u64 = (b: Uint8Array, off: number): bigint => new DataView(b.buffer, b.byteOffset).getBigUint64(off, true);
const u32 = (b: Uint8Array, off: number): number => new DataView(b.buffer, b.byteOffset).getUint32(off, true);
const s32 = (b: Uint8Array, off: number): number => new DataView(b.buffer, b.byteOffset).getInt32(off, true);

test('the synthetic module builds: ftrace site NOPed, jump entry, export', (t) => {
  const m = ok(build(syntheticModule()));
  const text = sectionOf(m, '.text');
  t.deepEqual([...text.bytes.subarray(0, 5)], [0x0f, 0x1f, 0x44, 0x00, 0x00]);
  t.deepEqual(m.mcountSites, [text.addr]);
  t.deepEqual(
    m.jumpEntries.map((j) => [j.site, j.target, j.key, j.flags, j.len, j.kind]),
    [[text.addr + 5n, text.addr + 7n, SYNTH_KEY, 1, 2, 'nop2']],
  );
  t.deepEqual([...m.exports], [['f', text.addr]]);
  t.deepEqual(
    m.exportList.map((e) => [e.name, e.gpl, e.namespace]),
    [['f', false, undefined]],
  );
  t.deepEqual([...m.imports.keys()].sort(), ['__fentry__', 'some_key']);
  t.is(m.modinfo.name, 'synth');
  t.deepEqual(sectionOf(m, '.bss').bytes, new Uint8Array(100));
});

test('R_X86_64_64, 32, 32S, PC32, PLT32, PC64 and NONE compute S + A (- P)', (t) => {
  const m = ok(
    build(
      withRelocs([
        { offset: 0, type: 1, sym: 'ext', addend: 8n },
        { offset: 8, type: 11, sym: 'ext', addend: -16n },
        { offset: 12, type: 2, sym: 'ext', addend: -4n },
        { offset: 16, type: 4, sym: 'ext', addend: 0n },
        { offset: 20, type: 0, sym: 'ext', addend: 0n },
        { offset: 24, type: 24, sym: 'ext', addend: 0n },
      ]),
    ),
  );
  const d = sectionOf(m, '.data.t');
  t.is(u64(d.bytes, 0), EXT + 8n);
  t.is(s32(d.bytes, 8), Number(BigInt.asIntN(32, EXT - 16n)));
  t.is(BigInt(s32(d.bytes, 12)), EXT - 4n - (d.addr + 12n));
  t.is(BigInt(s32(d.bytes, 16)), EXT - (d.addr + 16n));
  t.is(u32(d.bytes, 20), 0, 'NONE writes nothing');
  t.is(u64(d.bytes, 24), BigInt.asUintN(64, EXT - (d.addr + 24n)));
  t.is(m.relocations['R_X86_64_NONE'], 1);

  const low = ok(build(withRelocs([{ offset: 0, type: 10, sym: 'ext', addend: 0n }]), (n) => (n === 'ext' ? 0x12345678n : synthResolve(n))));
  t.is(u32(sectionOf(low, '.data.t').bytes, 0), 0x12345678);
});

test('a section symbol relocates against the placed section', (t) => {
  const m = ok(build(withRelocs([{ offset: 0, type: 1, sym: { section: '.rodata' }, addend: 16n }])));
  t.is(u64(sectionOf(m, '.data.t').bytes, 0), sectionOf(m, '.rodata').addr + 16n);
});

test('a nonzero existing value at the location is refused', (t) => {
  const data = new Uint8Array(32);
  data[3] = 1;
  const e = bad(build(withRelocs([{ offset: 0, type: 1, sym: 'ext' }], [{ name: 'ext' }], data)));
  t.is(e.kind, 'relocation');
  t.is(e.section, '.data.t');
  t.regex(e.message, /relocation 0 of \.rela\.data\.t \(R_X86_64_64\) at \.data\.t\+0x0: Invalid relocation target, existing value is nonzero/);
});

test('overflow of 32, 32S and PC32 is refused, naming the type and symbol', (t) => {
  const e32 = bad(build(withRelocs([{ offset: 0, type: 10, sym: 'ext' }])));
  t.regex(e32.message, /\(R_X86_64_32\).*overflow: value 0xffffffff81234560 \(ext\) does not fit in 32 bits unsigned/);
  const e32s = bad(build(withRelocs([{ offset: 0, type: 11, sym: 'ext' }]), (n) => (n === 'ext' ? 0x80000000n : synthResolve(n))));
  t.regex(e32s.message, /\(R_X86_64_32S\).*overflow: value 0x80000000 \(ext\) does not fit in 32 bits signed/);
  const far = bad(build(withRelocs([{ offset: 0, type: 2, sym: 'ext' }]), (n) => (n === 'ext' ? 0xffff888000000000n : synthResolve(n))));
  t.regex(far.message, /\(R_X86_64_PC32\).*overflow/);
  const plt = bad(build(withRelocs([{ offset: 0, type: 4, sym: 'ext' }]), (n) => (n === 'ext' ? 0x100000000n : synthResolve(n))));
  t.regex(plt.message, /\(R_X86_64_PLT32\).*overflow/);
});

test('an unknown relocation type is refused, named', (t) => {
  const e = bad(build(withRelocs([{ offset: 0, type: R_X86_64_GOTPCREL, sym: 'ext' }])));
  t.is(e.kind, 'relocation');
  t.regex(e.message, /unknown relocation type 9/);
});

test('an unresolved symbol is an error naming it; an unresolved weak symbol is 0', (t) => {
  const e = bad(build(withRelocs([{ offset: 0, type: 1, sym: 'nowhere' }], [{ name: 'nowhere' }])));
  t.is(e.kind, 'unresolved-symbol');
  t.is(e.symbol, 'nowhere');
  t.regex(e.message, /synth: unknown symbol nowhere/);
  const m = ok(build(withRelocs([{ offset: 0, type: 1, sym: 'maybe', addend: 4n }], [{ name: 'maybe', bind: STB_WEAK }])));
  t.is(u64(sectionOf(m, '.data.t').bytes, 0), 4n);
  t.is(m.imports.get('maybe'), 0n);
});

test('a common symbol is refused; a symbol in an unplaced section cannot be relocated against', (t) => {
  const c = bad(build(withRelocs([], [{ name: 'ext' }, { name: 'common_thing', section: SHN_COMMON }])));
  t.is(c.kind, 'symbol');
  t.regex(c.message, /symbol common_thing is a common symbol \(SHN_COMMON\)/);
  const u = bad(build(withRelocs([{ offset: 0, type: 1, sym: 'info_thing' }], [{ name: 'info_thing', section: '.modinfo' }])));
  t.is(u.kind, 'relocation');
  t.regex(u.message, /symbol info_thing is in section \.modinfo, which the loader does not place/);
});

test('relocations into sections the loader does not place are skipped', (t) => {
  const file = syntheticModule({ symbols: [{ name: 'ext' }], relocations: { '.modinfo': [{ offset: 0, type: 1, sym: 'ext' }] } });
  t.true(build(file).ok);
});

test('an ftrace site that is not a call to __fentry__ is refused, naming the site', (t) => {
  const wrong = bad(buildModuleImage(syntheticModule(), { base: BASE, initBase: INIT, fentry: SYNTH_FENTRY + 1n, resolve: synthResolve }));
  t.is(wrong.kind, 'mcount');
  t.regex(wrong.message, /ftrace site 0xffffffffc0010000 \(\.text\+0x0\) holds a call to 0xffffffff81076650, not __fentry__ \(0xffffffff81076651\)/);
  // Point the mcount entry at the nop2 (offset 5): "66 90 c3 cc cc" is not a call.
  const file = syntheticModule({ relocations: { __mcount_loc: [{ offset: 0, type: 1, sym: { section: '.text' }, addend: 5n }] } });
  const e = bad(build(file));
  t.regex(e.message, /ftrace site 0xffffffffc0010005 \(\.text\+0x5\) holds 66 90 c3 cc cc, not a call to __fentry__/);
  const data = syntheticModule({ relocations: { __mcount_loc: [{ offset: 0, type: 1, sym: { section: '.rodata' }, addend: 0n }] } });
  t.regex(bad(build(data)).message, /ftrace site 0x\w+ is not inside an executable section/);
});

test('a jump entry whose site is not a NOP or jmp is refused, naming the entry', (t) => {
  const file = syntheticModule({
    relocations: {
      __jump_table: [
        { offset: 0, type: 2, sym: { section: '.text' }, addend: 7n },
        { offset: 4, type: 2, sym: { section: '.text' }, addend: 7n },
        { offset: 8, type: 24, sym: 'some_key', addend: 0n },
      ],
    },
  });
  const e = bad(build(file));
  t.is(e.kind, 'jump-table');
  t.regex(e.message, /jump entry 0 at 0x\w+: site 0xffffffffc0010007 \(\.text\+0x7\) holds c3 cc cc cc cc, not a 2- or 5-byte NOP or jmp/);
});

test('a ksymtab name outside __ksymtab_strings is refused', (t) => {
  const file = syntheticModule({
    relocations: {
      __ksymtab: [
        { offset: 0, type: 2, sym: 'f', addend: 0n },
        { offset: 4, type: 2, sym: { section: '.rodata' }, addend: 0n },
      ],
    },
  });
  const e = bad(build(file));
  t.is(e.kind, 'ksymtab');
  t.regex(e.message, /__ksymtab entry 0: name at 0x\w+ is not a string in __ksymtab_strings/);
});

test('malformed files give named errors', (t) => {
  const file = syntheticModule();
  t.is(bad(build(file.subarray(0, 40))).kind, 'elf');
  t.is(bad(build(syntheticModule({ elfType: 2 }))).kind, 'not-a-module');
  const noName = bad(build(syntheticModule({ modinfo: { license: 'GPL' } })));
  t.is(noName.kind, 'modinfo');
  t.regex(noName.message, /no name= entry/);
  // A trailer whose sig_len runs past the start of the file.
  const signed = appendModuleSignature(file, { idType: PKEY_ID_PKCS7, signature: new Uint8Array(16) });
  if (!signed.ok) throw new Error(signed.error);
  const broken = Uint8Array.from(signed.value);
  new DataView(broken.buffer).setUint32(broken.length - 28 - 4, 0x7fffffff, false);
  t.is(bad(build(broken)).kind, 'signature-trailer');
  t.true(build(signed.value).ok, 'a well-formed trailer is stripped');
});

test('no byte flip makes the loader throw', async (t) => {
  const file = syntheticModule();
  await checkProperty(
    t,
    'no byte flip makes the loader throw',
    fc.property(fc.array(fc.tuple(fc.nat(file.length - 1), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }), (flips) => {
      const f = Uint8Array.from(file);
      for (const [i, v] of flips) f[i] = v;
      const r = build(f);
      return r.ok || (typeof r.error.message === 'string' && r.error.message.length > 0);
    }),
    scaledRuns(400),
  );
});
