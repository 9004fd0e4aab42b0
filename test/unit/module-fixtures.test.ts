/**
 * The module core on the real Debian 6.1 modules: each builds in dependency order against the
 * real vmlinux exports plus its dependencies' exports, with the README's ftrace and jump-label
 * counts, every undefined symbol resolved, page-separated permission groups, and the same
 * bytes whether laid out here or relocated at given addresses.
 */
import test from 'ava';
import { PAGE_SIZE_N } from '../../shared/addr.ts';
import { SHN_UNDEF } from '../../shared/elf/types.ts';
import { FTRACE_NOP5, GROUP_ORDER, buildModuleImage, checkLayout, relocateAt, MODULES_VADDR } from '../../shared/module/index.ts';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';
import {
  README_JUMP_RELOCATIONS,
  README_MCOUNT,
  buildFixtureChain,
  fixtureModulesInDependencyOrder,
  INIT_AREA,
  type BuiltFixture,
} from './module-fixture-chain.ts';

const fixtureTest = needsFixtures(test);

let chain: Promise<BuiltFixture[]> | undefined;
const built = (): Promise<BuiltFixture[]> => (chain ??= loadFixtureKernel().then(buildFixtureChain));

fixtureTest('the fixture modules come in modprobe order: every module after its depends=', (t) => {
  const order = fixtureModulesInDependencyOrder();
  t.is(order.length, 10);
  const pos = new Map(order.map((m, i) => [m.name, i]));
  for (const m of order) for (const d of m.depends) t.true(pos.get(d)! < pos.get(m.name)!, `${m.name} after ${d}`);
  const byFile = Object.fromEntries(order.map((m) => [m.file, m.depends]));
  t.deepEqual(byFile['virtio_net'], ['virtio_ring', 'virtio', 'net_failover']);
  t.deepEqual(byFile['kvm-intel'], ['kvm']);
  t.deepEqual(byFile['crc7'], []);
  t.is(order.find((m) => m.file === 'kvm-intel')!.name, 'kvm_intel');
});

fixtureTest('every fixture module builds, with the README ftrace and jump-label counts', async (t) => {
  const mods = await built();
  t.is(mods.length, 10);
  for (const { module: m, image, ms } of mods) {
    t.is(image.name, m.name);
    t.is(image.mcountSites.length, README_MCOUNT[m.file]!, `${m.file} mcount sites`);
    t.is(image.jumpEntries.length * 3, README_JUMP_RELOCATIONS[m.file]!, `${m.file} jump entries`);
    t.log(
      `${m.file.padEnd(12)} ${String(m.bytes.length).padStart(8)} bytes  built in ${ms.toFixed(1)} ms  mcount ${image.mcountSites.length}  jump ${image.jumpEntries.length}  exports ${image.exports.size}  imports ${image.imports.size}`,
    );
  }
  const kvm = mods.find((b) => b.module.file === 'kvm')!.image;
  t.true(kvm.percpu !== undefined, 'kvm has a per-CPU section');
  t.true(kvm.exports.has('kvm_vcpu_kick'));
});

fixtureTest('every undefined symbol resolves to a vmlinux export or an export of a depends= module', async (t) => {
  const kernel = await loadFixtureKernel();
  const mods = await built();
  const exportsOf = new Map(mods.map((b) => [b.image.name, b.image.exports]));
  let total = 0;
  for (const { module: m, image } of mods) {
    const undef = image.elf.symbols.filter((s) => s.index !== 0 && s.shndx === SHN_UNDEF);
    t.is(image.imports.size, new Set(undef.map((s) => s.name)).size, `${m.file}: every undefined symbol was resolved`);
    for (const [name, addr] of image.imports) {
      total++;
      const fromKernel = kernel.exports.get(name);
      if (fromKernel !== undefined) {
        t.is(addr, fromKernel);
        continue;
      }
      const provider = m.depends.find((d) => exportsOf.get(d)?.get(name) === addr);
      t.truthy(provider, `${m.file}: ${name} comes from one of ${m.depends.join(', ')}`);
    }
  }
  t.true(total > 1000);
});

fixtureTest('a module whose dependency is not loaded fails naming the unresolved symbol', async (t) => {
  const kernel = await loadFixtureKernel();
  const m = fixtureModulesInDependencyOrder().find((x) => x.file === 'net_failover')!;
  const r = buildModuleImage(m.bytes, {
    base: MODULES_VADDR,
    initBase: INIT_AREA,
    fentry: kernel.boundaries.__fentry__,
    resolve: (n) => kernel.exports.get(n),
  });
  t.false(r.ok);
  if (r.ok) return;
  t.is(r.error.kind, 'unresolved-symbol');
  t.truthy(r.error.symbol);
  t.regex(r.error.message, new RegExp(`unknown symbol ${r.error.symbol}`));
  t.regex(r.error.symbol!, /failover/);
});

fixtureTest('permission groups are page-aligned, page-separated and in text | ro | ro_after_init | rw order', async (t) => {
  const mods = await built();
  for (const { module: m, image } of mods) {
    const gs = image.groups;
    for (const g of gs) {
      t.is(g.start % PAGE_SIZE_N, 0n);
      t.is(g.end % PAGE_SIZE_N, 0n);
      t.true(g.end > g.start);
    }
    for (let i = 1; i < gs.length; i++) t.true(gs[i]!.start >= gs[i - 1]!.end, `${m.file}: groups do not overlap`);
    for (const part of ['core', 'init'] as const) {
      const order = gs.filter((g) => g.part === part).map((g) => GROUP_ORDER.indexOf(g.group));
      t.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
        `${m.file} ${part} groups in order`,
      );
    }
    for (const s of image.sections) {
      if (s.size === 0) continue;
      const g = gs.find((x) => x.part === s.part && x.group === s.group)!;
      t.true(s.addr >= g.start && s.addr + BigInt(s.size) <= g.end, `${m.file} ${s.name} inside its group`);
    }
    const placed = [...image.sections, ...(image.percpu ? [image.percpu] : [])];
    const checked = checkLayout(image.elf, placed);
    t.true(checked.ok, checked.ok ? '' : checked.error.message);
    if (checked.ok) t.deepEqual(checked.value.groups, image.groups, `${m.file}: checkLayout finds the same group ranges`);
  }
  const kvm = mods.find((b) => b.module.file === 'kvm')!.image;
  t.is(kvm.sections.find((s) => s.name === '__jump_table')!.group, 'ro_after_init');
  t.is(kvm.sections.find((s) => s.name === '.data..ro_after_init')!.group, 'ro_after_init');
  t.is(kvm.sections.find((s) => s.name === '.init.text')!.part, 'init');
  t.is(kvm.sections.find((s) => s.name === '.exit.text')!.part, 'core');
  t.false(kvm.sections.some((s) => s.name === '.modinfo' || s.name === '__versions' || s.name === '.data..percpu'));
});

fixtureTest('ftrace sites were calls to __fentry__ and are now 5-byte NOPs; jump sites and exports point into the module', async (t) => {
  const mods = await built();
  for (const { module: m, image } of mods) {
    const text = image.sections.filter((s) => s.group === 'text');
    const inText = (a: bigint, len = 1): (typeof text)[number] | undefined => text.find((s) => a >= s.addr && a + BigInt(len) <= s.addr + BigInt(s.size));
    for (const site of image.mcountSites) {
      const s = inText(site, 5);
      t.truthy(s, `${m.file}: site in text`);
      if (!s) continue;
      const off = Number(site - s.addr);
      t.deepEqual([...s.bytes.subarray(off, off + 5)], [...FTRACE_NOP5]);
      const fileBytes = image.elf.sectionBytes(image.elf.sections[s.shndx]!);
      t.deepEqual([...fileBytes.subarray(off, off + 5)], [0xe8, 0, 0, 0, 0], `${m.file}: the file holds an unrelocated call`);
    }
    for (const j of image.jumpEntries) {
      t.truthy(inText(j.site, j.len), `${m.file}: jump site in text`);
      t.truthy(inText(j.target), `${m.file}: jump target in text`);
    }
    for (const [name, addr] of image.exports) {
      const sym = image.elf.symbols.find((s) => s.name === name && s.shndx !== SHN_UNDEF);
      t.truthy(sym, `${m.file}: ${name} is defined`);
      if (!sym) continue;
      const sec = image.sections.find((s) => s.shndx === sym.shndx)!;
      t.is(addr, sec.addr + sym.value, `${m.file}: export ${name}`);
    }
  }
});

fixtureTest('relocateAt at the layout addresses gives the same bytes as buildModuleImage', async (t) => {
  const kernel = await loadFixtureKernel();
  const mods = await built();
  const exportsOf = new Map<string, ReadonlyMap<string, bigint>>();
  for (const { module: m, image } of mods) {
    const resolve = (n: string): bigint | undefined => kernel.exports.get(n) ?? [...exportsOf.values()].map((e) => e.get(n)).find((v) => v !== undefined);
    const placed = [...image.sections, ...(image.percpu ? [image.percpu] : [])].map((s) => ({ shndx: s.shndx, addr: s.addr, size: s.size }));
    const r = relocateAt(image.elf, placed, resolve, kernel.boundaries.__fentry__);
    t.true(r.ok, r.ok ? '' : r.error.message);
    if (!r.ok) continue;
    t.is(r.value.name, image.name);
    t.deepEqual(
      r.value.sections.map((s) => s.bytes),
      image.sections.map((s) => s.bytes),
      `${m.file}: identical bytes`,
    );
    t.deepEqual(r.value.mcountSites, image.mcountSites);
    exportsOf.set(image.name, image.exports);
  }
});

fixtureTest('a wrong __fentry__ address fails naming the first ftrace site', async (t) => {
  const kernel = await loadFixtureKernel();
  const m = fixtureModulesInDependencyOrder().find((x) => x.file === 'cordic')!;
  const r = buildModuleImage(m.bytes, {
    base: MODULES_VADDR,
    initBase: INIT_AREA,
    fentry: kernel.boundaries.__fentry__ + 16n,
    resolve: (n) => kernel.exports.get(n),
  });
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'mcount');
    t.regex(r.error.message, /ftrace site 0xffffffffc0000\w+ \(\.text\+0x0\) holds a call to 0xffffffff81076650, not __fentry__ \(0xffffffff81076660\)/);
  }
});

fixtureTest('a damaged real module gives a named error', async (t) => {
  const kernel = await loadFixtureKernel();
  const opts = { base: MODULES_VADDR, initBase: INIT_AREA, fentry: kernel.boundaries.__fentry__, resolve: (n: string) => kernel.exports.get(n) };
  const m = fixtureModulesInDependencyOrder().find((x) => x.file === 'crc7')!;
  const elf = buildModuleImage(m.bytes, opts);
  if (!elf.ok) throw new Error(elf.error.message);
  const plain = elf.value.elf.bytes;

  const truncated = buildModuleImage(plain.subarray(0, plain.length - 100), opts);
  t.false(truncated.ok);
  if (!truncated.ok) t.is(truncated.error.kind, 'elf');

  // Change the type of the first .rela.text entry to 99.
  const rela = elf.value.elf.sectionByName('.rela.text')!;
  const bad = Uint8Array.from(plain);
  new DataView(bad.buffer).setUint32(rela.offset + 8, 99, true);
  const r = buildModuleImage(bad, opts);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'relocation');
    t.regex(r.error.message, /crc7: relocation 0 of \.rela\.text \(type 99\) at \.text\+0x\w+: unknown relocation type 99/);
  }

  // Give .text a nonzero byte where a relocation goes.
  const first = elf.value.elf.relocations.find((x) => x.name === '.rela.text')!.entries[0]!;
  const text = elf.value.elf.sectionByName('.text')!;
  const nz = Uint8Array.from(plain);
  nz[text.offset + Number(first.offset)] = 0x5a;
  const r2 = buildModuleImage(nz, opts);
  t.false(r2.ok);
  if (!r2.ok) t.regex(r2.error.message, /Invalid relocation target, existing value is nonzero/);
});
