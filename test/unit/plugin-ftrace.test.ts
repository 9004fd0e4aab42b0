/**
 * The ftrace plugin (verifier-vm/plugins/ftrace.ts): NOP5 <-> call to a manifest trampoline
 * at __mcount_loc sites of the kernel and of verified modules; every deny path; the batch
 * combination through the Verifier; and every real fixture site.
 */
import test from 'ava';
import { NOP5, decodePatchInsn, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { ftracePlugin } from '../../verifier-vm/plugins/ftrace.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';
import { fixtureManifest } from './plugin-fixture-manifest.ts';
import { K, MOD, context, freshVm, item, patchRequest, syntheticManifest, syntheticModule } from './plugin-synthetic.ts';

const nop = [...NOP5];
const [S1, S2] = K.mcount;

function decideOne(it: PatchItem, ctx = context()) {
  const r = ftracePlugin.decide(patchRequest([it]), ctx);
  return r.items![0]!;
}

test('allows NOP -> call ftrace_caller and call -> NOP at a kernel site, naming the trampoline', (t) => {
  const on = decideOne(item('ftrace', S1!, nop, encodeCall32(S1!, K.ftraceCaller)));
  t.is(on.decision, 'allow');
  t.regex(on.reason, /ftrace site 0xffffffff81000100 \(kernel\) -> call ftrace_caller \(0xffffffff81001000\)/);
  const regs = decideOne(item('ftrace', S2!, nop, encodeCall32(S2!, K.ftraceRegsCaller)));
  t.is(regs.decision, 'allow');
  t.regex(regs.reason, /ftrace_regs_caller/);
  const off = decideOne(item('ftrace', S1!, encodeCall32(S1!, K.ftraceCaller), nop));
  t.deepEqual(off, { decision: 'allow', reason: 'ftrace site 0xffffffff81000100 (kernel) -> NOP' });
});

test("allows a verified module's mcount site, and forgets it once the module is gone", (t) => {
  const vm = freshVm();
  vm.modules.set(MOD.name, syntheticModule());
  const it = item('ftrace', MOD.mcount, nop, encodeCall32(MOD.mcount, K.ftraceCaller));
  const r = decideOne(it, context({ vm }));
  t.is(r.decision, 'allow');
  t.regex(r.reason, /module synth_mod/);
  vm.modules.delete(MOD.name);
  t.regex(decideOne(it, context({ vm })).reason, /0xffffffffc0000010 is not an ftrace site/);
});

test('denies a site that is not in __mcount_loc, even one byte off', (t) => {
  const off = S1! + 1n;
  const r = decideOne(item('ftrace', off, nop, encodeCall32(off, K.ftraceCaller)));
  t.deepEqual(r, { decision: 'deny', reason: '0xffffffff81000101 is not an ftrace site (no __mcount_loc entry of the kernel or a verified module)' });
});

test('denies a patch that is not 5 bytes', (t) => {
  const r = decideOne(item('ftrace', S1!, [0x0f, 0x1f], [0x66, 0x90]));
  t.is(r.decision, 'deny');
  t.regex(r.reason, /patch at ftrace site 0xffffffff81000100 is 2 bytes, not 5/);
});

test('denies when the old bytes differ from memory', (t) => {
  const r = decideOne(item('ftrace', S1!, nop, encodeCall32(S1!, K.ftraceCaller), encodeCall32(S1!, K.ftraceRegsCaller)));
  t.is(r.decision, 'deny');
  t.regex(r.reason, /^old bytes differ from memory at 0xffffffff81000100 \(old 0f 1f 44 00 00, memory e8 /);
});

test('denies a call to anything but a trampoline (__fentry__, a function, a module)', (t) => {
  for (const target of [K.fentry, K.func, K.ftraceCaller + 1n, MOD.text]) {
    const r = decideOne(item('ftrace', S1!, nop, encodeCall32(S1!, target)));
    t.is(r.decision, 'deny');
    t.is(r.reason, `ftrace site 0xffffffff81000100: call to 0x${target.toString(16)}, which is not an ftrace trampoline`);
  }
});

test('denies new bytes that are neither NOP5 nor a call (jmp, int3 padding, other NOP)', (t) => {
  const jmp = Uint8Array.from(encodeCall32(S1!, K.ftraceCaller));
  jmp[0] = 0xe9;
  t.is(decodePatchInsn(S1!, jmp).kind, 'jmp32');
  for (const neu of [jmp, Uint8Array.of(0xcc, 0xcc, 0xcc, 0xcc, 0xcc), Uint8Array.of(0x0f, 0x1f, 0x40, 0x00, 0x00)]) {
    const r = decideOne(item('ftrace', S1!, nop, neu));
    t.is(r.decision, 'deny');
    t.regex(r.reason, /are neither the 5-byte NOP nor a call to an ftrace trampoline/);
  }
});

test('denies everything without a manifest', (t) => {
  const r = decideOne(item('ftrace', S1!, nop, encodeCall32(S1!, K.ftraceCaller)), context({ manifest: undefined }));
  t.deepEqual(r, { decision: 'deny', reason: 'no kernel manifest loaded' });
});

test('.init.text sites are patchable during boot, not after the boot check', (t) => {
  const vm = freshVm();
  const it = item('ftrace', K.initMcount, nop, encodeCall32(K.initMcount, K.ftraceCaller));
  t.is(decideOne(it, context({ vm })).decision, 'allow');
  vm.bootVerified = true;
  t.deepEqual(decideOne(it, context({ vm })), { decision: 'deny', reason: 'ftrace site 0xffffffff83000010 is in .init.text, which is freed after boot' });
  t.is(decideOne(item('ftrace', S1!, nop, encodeCall32(S1!, K.ftraceCaller)), context({ vm })).decision, 'allow');
});

test('abstains on items of other kinds, and on the request as a whole', (t) => {
  const r = ftracePlugin.decide(patchRequest([item('jump-label', K.jump2.site, [0x66, 0x90], [0xeb, 0x3e])]), context());
  t.is(r.decision, 'abstain');
  t.is(r.items![0]!.decision, 'abstain');
});

test('through the Verifier: one bad item makes the batch not ok; good items stay allowed', (t) => {
  const v = new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS, manifest: syntheticManifest() });
  const verdict = v.verify(
    patchRequest([
      item('ftrace', S1!, nop, encodeCall32(S1!, K.ftraceCaller)),
      item('ftrace', S2!, nop, encodeCall32(S2!, K.fentry)),
      item('static-call', K.func, nop, nop),
    ]),
  );
  t.false(verdict.ok);
  t.is(verdict.items!.length, 3);
  t.true(verdict.items![0]!.ok);
  t.regex(verdict.items![0]!.reason, /^ftrace: ftrace site 0xffffffff81000100/);
  t.false(verdict.items![1]!.ok);
  t.regex(verdict.items![1]!.reason, /^ftrace: .*not an ftrace trampoline/);
  t.false(verdict.items![2]!.ok);
  t.is(
    verdict.items![2]!.reason,
    'static-call: 0xffffffff81002000 is not a static-call site (no .static_call_sites entry or __SCT__ trampoline of the kernel)',
  );
  t.regex(verdict.reason, /^2 of 3 items denied; first: ftrace: /);
  t.true(verdict.plugins.includes('ftrace'));

  const good = v.verify(
    patchRequest([item('ftrace', S1!, nop, encodeCall32(S1!, K.ftraceCaller)), item('ftrace', S2!, encodeCall32(S2!, K.ftraceRegsCaller), nop)]),
  );
  t.true(good.ok);
  t.is(good.reason, 'all 2 items allowed');
});

needsFixtures(test)('every real fixture mcount site (40,521) may be NOPed at boot, then switched to ftrace_caller and back', async (t) => {
  const k = await loadFixtureKernel();
  const manifest = fixtureManifest(k);
  const caller = manifest.body.ftraceTrampolines['ftrace_caller']!;
  const target = BigInt(`0x${caller}`);
  t.is(k.mcountSites.length, 40_521);
  const v = new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS, manifest });
  const boot: PatchItem[] = [];
  const on: PatchItem[] = [];
  const off: PatchItem[] = [];
  for (const s of k.mcountSites) {
    const fileBytes = k.readVirt(s.address, 5)!;
    boot.push(item('ftrace', s.address, fileBytes, nop)); // call __fentry__ -> NOP, as ftrace_init does
    const call = encodeCall32(s.address, target);
    on.push(item('ftrace', s.address, nop, call));
    off.push(item('ftrace', s.address, call, nop));
  }
  for (const [what, items] of [
    ['boot', boot],
    ['on', on],
    ['off', off],
  ] as const) {
    const verdict = v.verify(patchRequest(items));
    const denied = verdict.items!.filter((i) => !i.ok);
    t.is(denied.length, 0, `${what}: first denial: ${denied[0]?.reason}`);
    t.true(verdict.ok, what);
  }
  // The compile-time call to __fentry__ is not a trampoline: restoring it is refused.
  const s0 = k.mcountSites[0]!.address;
  const back = v.verify(patchRequest([item('ftrace', s0, nop, k.readVirt(s0, 5)!)]));
  t.false(back.ok);
});
