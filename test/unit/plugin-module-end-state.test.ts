/**
 * module-end-state through the verifier engine, with the real fixture kernel's manifest and
 * the real Debian signing certificate: every fixture module, loaded in dependency order as the
 * guest's loader lays it out, passes module-pkcs7 + module-end-state and gets per-group
 * grants; a missing dependency, a flipped byte, text and data on one page, a missing section,
 * an unauthenticated image, a name clash and unloads in use are each denied with a named reason.
 */
import test from 'ava';
import { createHash } from 'node:crypto';
import { MEM_ATTR } from '../../shared/abi.ts';
import { PAGE_SIZE, PAGE_SIZE_N } from '../../shared/addr.ts';
import { buildModuleImage, MODULES_VADDR } from '../../shared/module/index.ts';
import { MODULE_GRANTS, moduleEndStatePlugin } from '../../verifier-vm/plugins/module-end-state.ts';
import type { AnyPlugin } from '../../verifier-vm/plugin-api.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { needsFixtures } from '../helpers/fixtures.ts';
import { INIT_AREA, fixtureModulesInDependencyOrder } from './module-fixture-chain.ts';
import { Guest, VM, load, loadAll, manifest, sectionsOf, unload, verifier } from './module-end-state-setup.ts';

const fixtureTest = needsFixtures(test);

fixtureTest('module-end-state runs right after the signature plugins among the built-ins', (t) => {
  const names = BUILTIN_PLUGINS.map((p) => p.name);
  t.is(names.indexOf('module-end-state'), names.indexOf('module-pkcs7') + 1);
  t.true(names.indexOf('module-signature') < names.indexOf('module-end-state'));
});

fixtureTest('every fixture module, in dependency order, is allowed with per-group grants and recorded', async (t) => {
  const v = await verifier();
  const { images, ms } = await loadAll(v);
  for (const [file, time] of ms) t.log(`${file.padEnd(12)} verified (PKCS#7 + end state) in ${time.toFixed(1)} ms`);
  const state = v.vmState(VM);
  t.deepEqual([...state.modules.keys()], [...images.keys()]);
  for (const [name, { img }] of images) {
    const rec = state.modules.get(name)!;
    // The sites in init text are not kept: 6.1 frees them (ftrace_free_mem) before any runtime patch.
    const init = img.sections.filter((x) => x.part === 'init' && x.size > 0);
    const live = img.mcountSites.filter((a) => !init.some((x) => a >= x.addr && a < x.addr + BigInt(x.size)));
    t.is(rec.mcountSites.size, live.length);
    t.is(rec.jumpEntries.size, img.jumpEntries.length);
    t.deepEqual([...rec.exports], [...img.exports]);
    t.deepEqual(
      rec.ranges.map((r) => [r.start, r.end, r.permissions]),
      img.groups.map((g) => [g.start, g.end, MODULE_GRANTS[g.group]]),
    );
    // Text page hashes: every page of every text group, zeros where no section is.
    const textPages = img.groups.filter((g) => g.group === 'text').reduce((n, g) => n + Number((g.end - g.start) / PAGE_SIZE_N), 0);
    t.is(rec.textPageHashes.size, textPages, `${name}: one hash per text page`);
    const text = img.sections.filter((s) => s.group === 'text' && s.size > 0);
    for (const [page, hash] of rec.textPageHashes) {
      const buf = new Uint8Array(PAGE_SIZE);
      for (const s of text) {
        for (let i = 0; i < s.size; i++) {
          const a = s.addr + BigInt(i);
          if (a >= page && a < page + PAGE_SIZE_N) buf[Number(a - page)] = s.bytes[i]!;
        }
      }
      t.is(hash, createHash('sha256').update(buf).digest('hex'));
    }
    for (const site of rec.mcountSites) t.true(rec.textRanges.some((r) => site >= r.start && site + 5n <= r.end));
  }
});

fixtureTest('grants at the load: text R|X|IMMUTABLE, ro R|IMMUTABLE, ro_after_init R|W (until init returned), rw R|W; none for per-CPU', async (t) => {
  const v = await verifier();
  const guest = new Guest(await manifest());
  const order = fixtureModulesInDependencyOrder();
  for (const mod of order.slice(0, order.findIndex((m) => m.file === 'kvm') + 1)) {
    const img = guest.build(mod);
    const verdict = load(v, mod.name, mod.bytes, sectionsOf(img));
    t.true(verdict.ok, verdict.reason);
    guest.exports.set(img.name, img.exports);
    if (mod.file !== 'kvm') continue;
    t.deepEqual(verdict.plugins, ['module-pkcs7', 'module-end-state']);
    t.regex(verdict.reason, /module-pkcs7: module kvm/);
    const grant = new Map(verdict.grants!.map((g) => [g.shndx, g.permissions]));
    const want = (name: string) => grant.get(img.sections.find((s) => s.name === name)!.shndx);
    t.is(want('.text'), MEM_ATTR.READ | MEM_ATTR.EXEC | MEM_ATTR.IMMUTABLE);
    t.is(want('.init.text'), MEM_ATTR.READ | MEM_ATTR.EXEC | MEM_ATTR.IMMUTABLE);
    t.is(want('.rodata'), MEM_ATTR.READ | MEM_ATTR.IMMUTABLE);
    t.is(want('__jump_table'), MEM_ATTR.READ | MEM_ATTR.WRITE);
    t.is(want('.data..ro_after_init'), MEM_ATTR.READ | MEM_ATTR.WRITE);
    t.is(want('.data'), MEM_ATTR.READ | MEM_ATTR.WRITE);
    t.is(want('.bss'), MEM_ATTR.READ | MEM_ATTR.WRITE);
    t.is(verdict.grants!.length, img.sections.length);
    t.false(grant.has(img.percpu!.shndx));
  }
});

fixtureTest('a module whose dependency is not loaded is denied naming the symbol', async (t) => {
  const v = await verifier();
  const guest = new Guest(await manifest());
  const mods = fixtureModulesInDependencyOrder();
  const failover = guest.build(mods.find((m) => m.file === 'failover')!);
  guest.exports.set('failover', failover.exports); // the guest links it, the verifier never saw it
  const nf = mods.find((m) => m.file === 'net_failover')!;
  const verdict = load(v, nf.name, nf.bytes, sectionsOf(guest.build(nf)));
  t.false(verdict.ok);
  t.regex(verdict.reason, /module-end-state: module net_failover: net_failover: unknown symbol failover_\w+ .*\(depends on failover, not loaded\)/);
});

fixtureTest('one flipped byte in a relocated section is denied naming the section and offset', async (t) => {
  const v = await verifier();
  const guest = new Guest(await manifest());
  const mod = fixtureModulesInDependencyOrder().find((m) => m.file === 'virtio_ring')!;
  const img = guest.build(mod);
  const sections = sectionsOf(img);
  const text = img.sections.find((s) => s.name === '.text')!;
  const site = img.mcountSites[3]!;
  const off = Number(site - text.addr);
  const i = sections.findIndex((s) => s.shndx === text.shndx);
  const b = sections[i]!.bytes;
  b[off + 1] = b[off + 1]! ^ 0x01; // the NOP ftrace left, one byte changed
  const verdict = load(v, mod.name, mod.bytes, sections);
  t.false(verdict.ok);
  t.regex(
    verdict.reason,
    new RegExp(
      `section \\.text: relocated bytes differ from the signed image at offset 0x${(off + 1).toString(16)} \\(0x[0-9a-f]+: expected 0x1f, found 0x1e\\)`,
    ),
  );
  t.is(v.vmState(VM).modules.size, 0);
});

fixtureTest('a relocation to another address is denied too', async (t) => {
  const v = await verifier();
  const m = await manifest();
  const mod = fixtureModulesInDependencyOrder().find((x) => x.file === 'crc7')!;
  // The guest links a different export address into the code: the end state no longer matches.
  const r = buildModuleImage(mod.bytes, { base: MODULES_VADDR, initBase: INIT_AREA, fentry: m.fentry, resolve: (n) => (m.exports.get(n) ?? 0n) + 0x40n });
  if (!r.ok) throw new Error(r.error.message);
  const verdict = load(v, mod.name, mod.bytes, sectionsOf(r.value));
  t.false(verdict.ok);
  t.regex(verdict.reason, /section \.text: relocated bytes differ from the signed image at offset 0x[0-9a-f]+/);
});

fixtureTest('text and data on one page, and a missing section, are denied with named reasons', async (t) => {
  const v = await verifier();
  const guest = new Guest(await manifest());
  const mod = fixtureModulesInDependencyOrder().find((m) => m.file === 'crc7')!;
  const img = guest.build(mod);
  const text = img.sections.find((s) => s.name === '.text')!;
  const thisModule = img.sections.find((s) => s.name === '.gnu.linkonce.this_module')!;
  const shared = sectionsOf(img).map((s) => (s.shndx === thisModule.shndx ? { ...s, addr: text.addr + 0x40n } : s));
  const v1 = load(v, mod.name, mod.bytes, shared);
  t.false(v1.ok);
  t.regex(v1.reason, /page 0x[0-9a-f]+ holds section \.gnu\.linkonce\.this_module \(core rw\) and section \.text \(core text\)/);

  const missing = sectionsOf(img).filter((s) => s.shndx !== img.sections.find((x) => x.name === '.rodata')!.shndx);
  const v2 = load(v, mod.name, mod.bytes, missing);
  t.false(v2.ok);
  t.regex(v2.reason, /section \.rodata \(index \d+\) is missing from the placement/);
  t.is(v.vmState(VM).modules.size, 0);
});

fixtureTest('an image no signature plugin accepted is "not authenticated"; a wrong name or a second load is refused', async (t) => {
  const alone = await verifier([moduleEndStatePlugin as AnyPlugin]);
  const guest = new Guest(await manifest());
  const mod = fixtureModulesInDependencyOrder().find((m) => m.file === 'crc7')!;
  const img = guest.build(mod);
  const v0 = load(alone, mod.name, mod.bytes, sectionsOf(img));
  t.false(v0.ok);
  t.is(v0.reason, 'module-end-state: module crc7: image not authenticated (no signature plugin accepted it)');

  const v = await verifier();
  const wrong = load(v, 'crc8', mod.bytes, sectionsOf(img));
  t.false(wrong.ok);
  t.regex(wrong.reason, /module crc8: the signed image's \.modinfo names it "crc7"/);
  t.true(load(v, mod.name, mod.bytes, sectionsOf(img)).ok);
  const again = load(v, mod.name, mod.bytes, sectionsOf(guest.build(mod)));
  t.false(again.ok);
  t.regex(again.reason, /module crc7: is already loaded/);
});

fixtureTest('unload: refused when unknown or in use; then the module loads again', async (t) => {
  const v = await verifier();
  const { images } = await loadAll(v);
  const u0 = unload(v, 'nope');
  t.false(u0.ok);
  t.is(u0.reason, 'module-end-state: module nope is not loaded');
  const inUse = unload(v, 'kvm');
  t.false(inUse.ok);
  t.is(inUse.reason, 'module-end-state: module kvm is in use by kvm_intel');

  const u1 = unload(v, 'kvm_intel');
  t.true(u1.ok, u1.reason);
  t.false(v.vmState(VM).modules.has('kvm_intel'));
  const { mod, img } = images.get('kvm_intel')!;
  const again = load(v, mod.name, mod.bytes, sectionsOf(img));
  t.true(again.ok, again.reason);
  t.true(v.vmState(VM).modules.has('kvm_intel'));

  t.true(unload(v, 'kvm_intel').ok);
  t.true(unload(v, 'kvm').ok, 'kvm is free once kvm_intel is gone');
  t.true(unload(v, 'irqbypass').ok);
  t.false(v.vmState(VM).modules.has('kvm'));
});

fixtureTest('a module placed over a loaded one is refused', async (t) => {
  const v = await verifier();
  const guest = new Guest(await manifest());
  const mods = fixtureModulesInDependencyOrder();
  const crc7 = mods.find((m) => m.file === 'crc7')!;
  t.true(load(v, crc7.name, crc7.bytes, sectionsOf(guest.build(crc7))).ok);
  guest.base = MODULES_VADDR; // the guest reuses crc7's pages without unloading it
  const cordic = mods.find((m) => m.file === 'cordic')!;
  const verdict = load(v, cordic.name, cordic.bytes, sectionsOf(guest.build(cordic)));
  t.false(verdict.ok);
  t.regex(verdict.reason, /module cordic: section \S+ \[0xffffffffc000[0-9a-f]+, 0x[0-9a-f]+\) overlaps module crc7 \[0xffffffffc000[0-9a-f]+, 0x[0-9a-f]+\)/);
});
