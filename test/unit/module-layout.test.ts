/**
 * Module layout: layoutModule() as layout_sections() with CONFIG_STRICT_MODULE_RWX, and
 * checkLayout() refusing every way a placement chosen by someone else can be wrong.
 */
import test from 'ava';
import { MEM_ATTR } from '../../shared/abi.ts';
import { parseElf64, type Elf64 } from '../../shared/elf/elf64.ts';
import { MODULES_VADDR, checkLayout, layoutModule, planSections, type ModuleLayout, type PlacedSectionRef } from '../../shared/module/index.ts';
import { AX, WA, buildObject, syntheticModule } from './module-elf-builder.ts';

const BASE = MODULES_VADDR + 0x10000n;
const INIT = MODULES_VADDR + 0x100000n;

function elfOf(bytes: Uint8Array): Elf64 {
  const r = parseElf64(bytes);
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

function laidOut(elf: Elf64): ModuleLayout {
  const r = layoutModule(elf, { base: BASE, initBase: INIT });
  if (!r.ok) throw new Error(r.error.message);
  return r.value;
}

const refs = (l: ModuleLayout): PlacedSectionRef[] => l.sections.map((s) => ({ shndx: s.shndx, addr: s.addr, size: s.size }));

test('groups in order text | ro | ro_after_init | rw, each starting on a page; init at its own base', (t) => {
  const elf = elfOf(syntheticModule());
  const l = laidOut(elf);
  const at = (name: string) => l.sections.find((s) => s.name === name)!;
  t.is(at('.text').addr, BASE);
  t.is(at('.text').group, 'text');
  t.is(at('.rodata').addr, BASE + 0x1000n, 'ro starts on the next page');
  t.is(at('.rodata').group, 'ro');
  // ro: .rodata (24, align 8), __mcount_loc (8, align 1), __ksymtab (12, align 4), __ksymtab_strings
  t.is(at('__mcount_loc').addr, BASE + 0x1000n + 24n);
  t.is(at('__ksymtab').addr, BASE + 0x1000n + 32n);
  t.is(at('.data..ro_after_init').group, 'ro_after_init');
  t.is(at('__jump_table').group, 'ro_after_init', 'the kernel marks __jump_table ro_after_init');
  t.is(at('.data..ro_after_init').addr, BASE + 0x2000n);
  t.is(at('__jump_table').addr, BASE + 0x2000n + 8n);
  t.is(at('.data').addr, BASE + 0x3000n, 'rw on its own page');
  t.is(at('.bss').addr, BASE + 0x3000n + 64n, '.bss aligned to 32 after .data (40 bytes)');
  t.is(at('.init.text').part, 'init');
  t.is(at('.init.text').addr, INIT);
  t.false(
    l.sections.some((s) => s.name === '.modinfo'),
    '.modinfo is read, not placed',
  );
  t.deepEqual(
    l.groups.map((g) => [g.part, g.group, g.start - BASE, g.end - BASE, g.permissions]),
    [
      ['core', 'text', 0n, 0x1000n, MEM_ATTR.READ | MEM_ATTR.EXEC],
      ['core', 'ro', 0x1000n, 0x2000n, MEM_ATTR.READ],
      ['core', 'ro_after_init', 0x2000n, 0x3000n, MEM_ATTR.READ],
      ['core', 'rw', 0x3000n, 0x4000n, MEM_ATTR.READ | MEM_ATTR.WRITE],
      ['init', 'text', INIT - BASE, INIT - BASE + 0x1000n, MEM_ATTR.READ | MEM_ATTR.EXEC],
    ],
  );
  t.true(checkLayout(elf, refs(l)).ok);
});

test('layout bases must be page-aligned; the two layouts must not overlap', (t) => {
  const elf = elfOf(syntheticModule());
  const r = layoutModule(elf, { base: BASE + 8n, initBase: INIT });
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /layout base 0x\w+ is not a page-aligned/);
  const r2 = layoutModule(elf, { base: BASE, initBase: BASE + 0x1000n });
  t.false(r2.ok);
  if (!r2.ok) t.regex(r2.error.message, /core layout .* and init layout .* overlap/);
});

test('a writable and executable section is refused, named', (t) => {
  const elf = elfOf(syntheticModule({ sections: [{ name: '.wx', flags: WA | AX, data: new Uint8Array(4) }] }));
  const r = planSections(elf);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'section');
    t.is(r.error.section, '.wx');
    t.regex(r.error.message, /section \.wx .* is writable and executable/);
  }
});

test('an alignment that is not a power of two is refused, named', (t) => {
  const elf = elfOf(syntheticModule({ sections: [{ name: '.odd', flags: 0x2, align: 12, data: new Uint8Array(4) }] }));
  const r = layoutModule(elf, { base: BASE, initBase: INIT });
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /section \.odd has alignment 12/);
});

test('a per-CPU section needs a per-CPU pointer and is placed apart', (t) => {
  const elf = elfOf(syntheticModule({ sections: [{ name: '.data..percpu', flags: WA, align: 16, data: new Uint8Array(32) }] }));
  const r = layoutModule(elf, { base: BASE, initBase: INIT });
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /per-CPU section \.data\.\.percpu; a percpuBase is needed/);
  const ok = layoutModule(elf, { base: BASE, initBase: INIT, percpuBase: 0x40000n });
  t.true(ok.ok);
  if (!ok.ok) return;
  t.is(ok.value.percpu?.addr, 0x40000n);
  t.false(ok.value.sections.some((s) => s.name === '.data..percpu'));
  const placed = refs(ok.value);
  const c = checkLayout(elf, placed);
  t.false(c.ok, 'the per-CPU section must be in the placement too');
  if (!c.ok) t.regex(c.error.message, /per-CPU section \.data\.\.percpu is missing/);
  t.true(checkLayout(elf, [...placed, { shndx: ok.value.percpu!.shndx, addr: 0x40000n, size: 32 }]).ok);
});

test('checkLayout refuses a missing section, naming it', (t) => {
  const elf = elfOf(syntheticModule());
  const placed = refs(laidOut(elf)).filter((p) => elf.sections[p.shndx]!.name !== '.rodata');
  const r = checkLayout(elf, placed);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'placement');
    t.is(r.error.section, '.rodata');
    t.regex(r.error.message, /section \.rodata \(index \d+\) is missing from the placement/);
  }
});

test('checkLayout refuses a section placed twice, a wrong size, and a section the loader does not place', (t) => {
  const elf = elfOf(syntheticModule());
  const placed = refs(laidOut(elf));
  const dup = checkLayout(elf, [...placed, placed[0]!]);
  t.false(dup.ok);
  if (!dup.ok) t.regex(dup.error.message, /section \.text is placed more than once/);
  const size = checkLayout(
    elf,
    placed.map((p, i) => (i === 0 ? { ...p, size: p.size + 1 } : p)),
  );
  t.false(size.ok);
  if (!size.ok) t.regex(size.error.message, /section \.text is placed with size 17, the module says 16/);
  const modinfo = elf.sectionByName('.modinfo')!;
  const extra = checkLayout(elf, [...placed, { shndx: modinfo.index, addr: BASE + 0x8000n, size: modinfo.size }]);
  t.false(extra.ok);
  if (!extra.ok) t.regex(extra.error.message, /section \.modinfo \(index \d+\) is not a section the loader places/);
  const bogus = checkLayout(elf, [...placed, { shndx: 999, addr: BASE + 0x8000n, size: 1 }]);
  t.false(bogus.ok);
  if (!bogus.ok) t.regex(bogus.error.message, /section #999/);
});

test('checkLayout refuses a misaligned section', (t) => {
  const elf = elfOf(syntheticModule());
  const placed = refs(laidOut(elf)).map((p) => (elf.sections[p.shndx]!.name === '.data' ? { ...p, addr: p.addr + 8n } : p));
  const r = checkLayout(elf, placed);
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /section \.data at 0x\w+ is not aligned to its sh_addralign 64/);
});

test('checkLayout refuses overlapping sections', (t) => {
  const elf = elfOf(syntheticModule());
  const l = laidOut(elf);
  const rodata = l.sections.find((s) => s.name === '.rodata')!;
  const placed = refs(l).map((p) => (elf.sections[p.shndx]!.name === '__mcount_loc' ? { ...p, addr: rodata.addr + 8n } : p));
  const r = checkLayout(elf, placed);
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /overlaps section/);
});

test('checkLayout refuses text and data on one page, naming both sections', (t) => {
  const elf = elfOf(syntheticModule());
  const placed = refs(laidOut(elf)).map((p) => (elf.sections[p.shndx]!.name === '.data' ? { ...p, addr: BASE + 0x40n } : p));
  const r = checkLayout(elf, placed);
  t.false(r.ok);
  if (!r.ok) {
    t.regex(r.error.message, /page 0xffffffffc0010000 holds section/);
    t.regex(r.error.message, /\.text \(core text\)/);
    t.regex(r.error.message, /\.data \(core rw\)/);
  }
});

test('checkLayout refuses core text and init text on one page', (t) => {
  const elf = elfOf(syntheticModule());
  const placed = refs(laidOut(elf)).map((p) => (elf.sections[p.shndx]!.name === '.init.text' ? { ...p, addr: BASE + 0x20n } : p));
  const r = checkLayout(elf, placed);
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /\(init text\)/);
});

test('checkLayout refuses a section outside the module area unless told otherwise', (t) => {
  const elf = elfOf(syntheticModule());
  const placed = refs(laidOut(elf)).map((p) => (elf.sections[p.shndx]!.name === '.data' ? { ...p, addr: 0xffffffff81000000n } : p));
  const r = checkLayout(elf, placed);
  t.false(r.ok);
  if (!r.ok) t.regex(r.error.message, /section \.data \[0xffffffff81000000, 0xffffffff81000028\) is outside the module area/);
  t.true(checkLayout(elf, placed, { area: { start: 0xffffffff80000000n, end: 0xffffffffff000000n } }).ok);
});

test('scattered sections give one range per run of pages of a group', (t) => {
  const elf = elfOf(syntheticModule());
  const placed = refs(laidOut(elf)).map((p) => (elf.sections[p.shndx]!.name === '.bss' ? { ...p, addr: BASE + 0x9000n } : p));
  const r = checkLayout(elf, placed);
  t.true(r.ok);
  if (!r.ok) return;
  const rw = r.value.groups.filter((g) => g.group === 'rw');
  t.deepEqual(
    rw.map((g) => [g.start - BASE, g.end - BASE]),
    [
      [0x3000n, 0x4000n],
      [0x9000n, 0xa000n],
    ],
  );
});

test('a module that is not ET_REL is refused', (t) => {
  const elf = elfOf(buildObject({ elfType: 2, sections: [{ name: '.text', flags: AX, data: new Uint8Array(1) }] }));
  const r = planSections(elf);
  t.false(r.ok);
  if (!r.ok) t.is(r.error.kind, 'not-a-module');
});
