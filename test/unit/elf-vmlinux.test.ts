/**
 * The ELF64 reader on the real Debian 6.1 vmlinux (decompressed from the fixture vmlinuz):
 * a stripped x86-64 EXEC image with 39 sections and five program headers.
 */

import test from 'ava';
import { parseElf64 } from '../../shared/elf/elf64.ts';
import { EM_X86_64, ET_EXEC, PT_LOAD, PT_NOTE, SHT_NOBITS, SHT_PROGBITS } from '../../shared/elf/types.ts';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';

const fixtureTest = needsFixtures(test);

fixtureTest('vmlinux is a stripped ELF64 EXEC x86-64 image with 39 sections', async (t) => {
  const { vmlinux } = await loadFixtureKernel();
  const r = parseElf64(vmlinux);
  if (!r.ok) return t.fail(r.error.message);
  const e = r.value;
  t.is(e.type, ET_EXEC);
  t.is(e.machine, EM_X86_64);
  t.is(e.sections.length, 39);
  t.is(e.symbols.length, 0, 'stripped: no .symtab');
  t.is(e.relocations.length, 0);
  t.is(e.entry, 0x1000000n);
  t.is(e.sections[38]?.name, '.shstrtab');
});

fixtureTest('vmlinux sections and segments have the addresses readelf shows', async (t) => {
  const { elf } = await loadFixtureKernel();
  const text = elf.sectionByName('.text');
  t.like(text, { index: 1, type: SHT_PROGBITS, addr: 0xffffffff81000000n, offset: 0x200000, size: 0xe01d32, addralign: 4096 });
  t.like(elf.sectionByName('.bss'), { type: SHT_NOBITS, addr: 0xffffffff83310000n });
  t.is(elf.sectionBytes(elf.sectionByName('.bss')!).length, 0);
  t.like(elf.sectionByName('.data..percpu'), { addr: 0n, size: 0x35000 });
  t.deepEqual(
    elf.programHeaders.map((p) => p.type),
    [PT_LOAD, PT_LOAD, PT_LOAD, PT_LOAD, PT_NOTE],
  );
  t.like(elf.programHeaders[0], { vaddr: 0xffffffff81000000n, paddr: 0x1000000n, offset: 0x200000, filesz: 26126832 });
  t.like(elf.programHeaders[2], { vaddr: 0n, paddr: 0x3044000n });
  // sectionBytes is a view of the image at sh_offset, not a copy.
  t.is(elf.sectionBytes(text!).byteOffset, elf.bytes.byteOffset + 0x200000);
});
