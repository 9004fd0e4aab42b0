/**
 * The jump-label plugin (verifier-vm/plugins/jump-label.ts): NOP <-> jump to the entry's own
 * target at __jump_table sites of the kernel and of verified modules, every deny path, the
 * batch combination through the Verifier, and every real fixture entry.
 */
import test from 'ava';
import { NOP2, NOP5, bytesEqual, encodeJmp32, encodeJmp8, encodeJumpLabel } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { jumpLabelPlugin } from '../../verifier-vm/plugins/jump-label.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';
import { fixtureManifest } from './plugin-fixture-manifest.ts';
import { K, MOD, context, freshVm, item, patchRequest, syntheticManifest, syntheticModule } from './plugin-synthetic.ts';

const nop2 = [...NOP2];
const nop5 = [...NOP5];
const J2 = K.jump2;
const J5 = K.jump5;

function decideOne(it: PatchItem, ctx = context()) {
  return jumpLabelPlugin.decide(patchRequest([it]), ctx).items![0]!;
}

test('2-byte site: NOP2 <-> eb rel8 to the entry target', (t) => {
  const jmp = encodeJmp8(J2.site, J2.target);
  const on = decideOne(item('jump-label', J2.site, nop2, jmp));
  t.deepEqual(on, { decision: 'allow', reason: 'jump-label site 0xffffffff81000300 (kernel) -> jmp 0xffffffff81000340' });
  const off = decideOne(item('jump-label', J2.site, jmp, nop2));
  t.deepEqual(off, { decision: 'allow', reason: 'jump-label site 0xffffffff81000300 (kernel) -> NOP2' });
});

test('5-byte site: NOP5 <-> e9 rel32 to the entry target', (t) => {
  const jmp = encodeJmp32(J5.site, J5.target);
  t.is(decideOne(item('jump-label', J5.site, nop5, jmp)).decision, 'allow');
  t.is(decideOne(item('jump-label', J5.site, jmp, nop5)).decision, 'allow');
});

test("a verified module's entry is patchable while the module is loaded", (t) => {
  const vm = freshVm();
  const it = item('jump-label', MOD.jump2.site, nop2, encodeJmp8(MOD.jump2.site, MOD.jump2.target));
  t.regex(decideOne(it, context({ vm })).reason, /is not a jump-label site/);
  vm.modules.set(MOD.name, syntheticModule());
  const r = decideOne(it, context({ vm }));
  t.is(r.decision, 'allow');
  t.regex(r.reason, /\(module synth_mod\)/);
});

test('denies a jump to a foreign target, at either length', (t) => {
  const r2 = decideOne(item('jump-label', J2.site, nop2, encodeJmp8(J2.site, J2.target + 4n)));
  t.deepEqual(r2, {
    decision: 'deny',
    reason: "jump-label site 0xffffffff81000300: jump to foreign target 0xffffffff81000344 (the entry's target is 0xffffffff81000340)",
  });
  const r5 = decideOne(item('jump-label', J5.site, nop5, encodeJmp32(J5.site, K.func)));
  t.is(r5.decision, 'deny');
  t.regex(r5.reason, /jump to foreign target 0xffffffff81002000/);
  // The other entry's target is foreign too.
  t.regex(decideOne(item('jump-label', J5.site, nop5, encodeJmp32(J5.site, J2.target))).reason, /foreign target/);
});

test('denies a length other than the entry length', (t) => {
  const r = decideOne(item('jump-label', J2.site, nop5, encodeJmp32(J2.site, J2.target)));
  t.deepEqual(r, { decision: 'deny', reason: 'patch at jump-label site 0xffffffff81000300 is 5 bytes, the site is 2' });
  t.regex(decideOne(item('jump-label', J5.site, nop2, encodeJmp8(J5.site, J5.site + 0x10n))).reason, /is 2 bytes, the site is 5/);
});

test('denies old bytes that differ from memory', (t) => {
  const jmp = encodeJmp8(J2.site, J2.target);
  const r = decideOne(item('jump-label', J2.site, nop2, jmp, jmp));
  t.deepEqual(r, { decision: 'deny', reason: 'old bytes differ from memory at 0xffffffff81000300 (old 66 90, memory eb 3e)' });
});

test('denies new bytes that are neither the NOP nor the jump (call, other opcodes)', (t) => {
  const call = Uint8Array.from(encodeJmp32(J5.site, J5.target));
  call[0] = 0xe8;
  const r = decideOne(item('jump-label', J5.site, nop5, call));
  t.is(r.decision, 'deny');
  t.regex(r.reason, /neither NOP5 nor e9 rel32 to the entry's target/);
  t.regex(decideOne(item('jump-label', J2.site, nop2, [0x74, 0x3e])).reason, /neither NOP2 nor eb rel8/);
});

test('denies a site that is not a jump entry, no manifest, and .init.text after boot', (t) => {
  t.regex(decideOne(item('jump-label', J2.site + 1n, nop2, nop2)).reason, /^0xffffffff81000301 is not a jump-label site/);
  t.deepEqual(decideOne(item('jump-label', J2.site, nop2, nop2), context({ manifest: undefined })), { decision: 'deny', reason: 'no kernel manifest loaded' });
  const vm = freshVm();
  const init = item('jump-label', K.initJump5.site, nop5, encodeJmp32(K.initJump5.site, K.initJump5.target));
  t.is(decideOne(init, context({ vm })).decision, 'allow');
  vm.bootVerified = true;
  t.regex(decideOne(init, context({ vm })).reason, /is in \.init\.text, which is freed after boot/);
});

test('through the Verifier: a foreign jump in a batch is denied, its neighbours are allowed', (t) => {
  const v = new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS, manifest: syntheticManifest() });
  const verdict = v.verify(
    patchRequest([
      item('jump-label', J2.site, nop2, encodeJmp8(J2.site, J2.target)),
      item('jump-label', J5.site, nop5, encodeJmp32(J5.site, K.func)),
      item('ftrace', K.mcount[0]!, nop5, nop5),
    ]),
  );
  t.false(verdict.ok);
  t.deepEqual(
    verdict.items!.map((i) => i.ok),
    [true, false, true],
  );
  t.regex(verdict.items![1]!.reason, /^jump-label: .*foreign target/);
  t.deepEqual([...verdict.plugins].sort(), ['ftrace', 'jump-label']);
});

needsFixtures(test)('every real fixture jump entry (6,299) may be switched both ways', async (t) => {
  const k = await loadFixtureKernel();
  const manifest = fixtureManifest(k);
  t.is(k.jumpEntries.length, 6_299);
  const v = new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS, manifest });
  const on: PatchItem[] = [];
  const off: PatchItem[] = [];
  const fromFile: PatchItem[] = [];
  let fileMatches = 0;
  for (const e of k.jumpEntries) {
    const nop = encodeJumpLabel(e.site, e.length, e.target, false);
    const jmp = encodeJumpLabel(e.site, e.length, e.target, true);
    on.push(item('jump-label', e.site, nop, jmp));
    off.push(item('jump-label', e.site, jmp, nop));
    const file = k.readVirt(e.site, e.length)!;
    if (bytesEqual(file, nop) || bytesEqual(file, jmp)) fileMatches++;
    fromFile.push(item('jump-label', e.site, file, bytesEqual(file, nop) ? jmp : nop));
  }
  t.is(fileMatches, 6_299, 'the file image holds the NOP or the jump to the entry target at every site');
  for (const [what, items] of [
    ['on', on],
    ['off', off],
    ['from file', fromFile],
  ] as const) {
    const verdict = v.verify(patchRequest(items));
    const denied = verdict.items!.filter((i) => !i.ok);
    t.is(denied.length, 0, `${what}: first denial: ${denied[0]?.reason}`);
    t.true(verdict.ok, what);
  }
});
