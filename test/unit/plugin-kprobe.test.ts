/**
 * The kprobe policy plugin (verifier-vm/plugins/kprobe.ts): default deny, allow/deny ranges,
 * int3 install and removal of recorded probes only, the state kept by commit, and the batch
 * combination through the Verifier.
 */
import test from 'ava';
import { encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { installedKprobes, kprobePlugin, parseKprobeConfig } from '../../verifier-vm/plugins/kprobe.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { K, MOD, context, item, patchRequest, syntheticManifest, syntheticModule } from './plugin-synthetic.ts';

const h = (a: bigint) => a.toString(16);
/** Allows all of synthetic .text except [func+0x10, func+0x20), and all module text. */
const CONFIG = {
  allow: [
    { start: h(K.text), end: `0x${h(K.text + BigInt(K.textSize))}` },
    { start: h(MOD.text), end: h(MOD.text + BigInt(MOD.textSize)) },
    { start: h(K.rodata), end: h(K.rodata + 0x1000n) },
    { start: h(K.initText), end: h(K.initText + 0x1000n) },
  ],
  deny: [{ start: h(K.func + 0x10n), end: h(K.func + 0x20n) }],
};

function verifier(config: Record<string, unknown> = CONFIG) {
  return new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS, manifest: syntheticManifest(), pluginConfig: { kprobe: config } });
}

const install = (site: bigint, orig = 0x55): PatchItem => item('kprobe', site, [orig], [0xcc]);
const remove = (site: bigint, orig = 0x55): PatchItem => item('kprobe', site, [0xcc], [orig]);

test('default deny: with no configuration no probe is allowed', (t) => {
  const v = verifier({});
  const verdict = v.verify(patchRequest([install(K.func)]));
  t.false(verdict.ok);
  t.is(verdict.items![0]!.reason, 'kprobe: kprobe site 0xffffffff81002000 is not in an allowed range (default deny)');
});

test('install in an allowed range, record it, remove it restoring the byte, then nothing is left to remove', (t) => {
  const v = verifier();
  const a = v.verify(patchRequest([install(K.func, 0x55)]));
  t.true(a.ok, a.reason);
  t.is(a.items![0]!.reason, 'kprobe: kprobe installed at 0xffffffff81002000 (kernel) over 55');
  t.deepEqual([...installedKprobes({ ...context(), vm: v.vmState('vm0') })], [[K.func, { original: 0x55, module: null }]]);

  const twice = v.verify(patchRequest([item('kprobe', K.func, [0xcc], [0xcc])]));
  t.regex(twice.items![0]!.reason, /a kprobe is already installed at 0xffffffff81002000/);

  const wrong = v.verify(patchRequest([remove(K.func, 0x90)]));
  t.false(wrong.ok);
  t.regex(wrong.items![0]!.reason, /writes 90, but the original byte was 55/);

  const r = v.verify(patchRequest([remove(K.func, 0x55)]));
  t.true(r.ok, r.reason);
  t.is(installedKprobes({ ...context(), vm: v.vmState('vm0') }).size, 0);
  const again = v.verify(patchRequest([remove(K.func, 0x55)]));
  t.regex(again.items![0]!.reason, /no kprobe is installed at 0xffffffff81002000; only a recorded probe may be removed/);
});

test('a deny range wins over an allow range', (t) => {
  const v = verifier();
  const verdict = v.verify(patchRequest([install(K.func + 0x18n)]));
  t.is(verdict.items![0]!.reason, 'kprobe: kprobe site 0xffffffff81002018 is in the denied range [0xffffffff81002010, 0xffffffff81002020)');
  t.true(v.verify(patchRequest([install(K.func + 0x20n)])).ok, 'the end is exclusive');
});

test('refuses sites outside runtime text even if a range allows them: rodata, .init.text', (t) => {
  const v = verifier();
  t.regex(v.verify(patchRequest([install(K.rodata + 4n)])).items![0]!.reason, /kprobe site 0xffffffff82000004 is not in kernel or verified module text/);
  t.regex(v.verify(patchRequest([install(K.initText + 4n)])).items![0]!.reason, /not in kernel or verified module text/);
});

test('refuses bytes of ftrace and jump-label sites; the byte after a site is fine', (t) => {
  const v = verifier();
  const s = K.mcount[0]!;
  for (let off = 0n; off < 5n; off++) {
    t.regex(v.verify(patchRequest([install(s + off)])).items![0]!.reason, new RegExp(`inside the ftrace site 0x${h(s)}`));
  }
  t.true(v.verify(patchRequest([install(s + 5n)])).ok);
  t.regex(v.verify(patchRequest([install(K.jump2.site + 1n)])).items![0]!.reason, /inside the jump-label site 0xffffffff81000300/);
  t.true(v.verify(patchRequest([install(K.jump2.site + 2n)])).ok);
  t.regex(v.verify(patchRequest([install(K.jump5.site + 4n)])).items![0]!.reason, /inside the jump-label site 0xffffffff81000400/);
});

test('refuses a stale old byte, a byte already int3, a multi-byte patch, and no manifest', (t) => {
  const v = verifier();
  t.regex(
    v.verify(patchRequest([item('kprobe', K.func, [0x55], [0xcc], [0x48])])).items![0]!.reason,
    /old bytes differ from memory at 0xffffffff81002000 \(old 55, memory 48\)/,
  );
  t.regex(v.verify(patchRequest([item('kprobe', K.func, [0xcc], [0xcc])])).items![0]!.reason, /memory at 0xffffffff81002000 already holds int3/);
  t.regex(v.verify(patchRequest([item('kprobe', K.func, [0x55, 0x48], [0xcc, 0x48])])).items![0]!.reason, /is 2 bytes, not 1/);
  const r = kprobePlugin.decide(patchRequest([install(K.func)]), context({ manifest: undefined, config: CONFIG }));
  t.deepEqual(r.items![0], { decision: 'deny', reason: 'no kernel manifest loaded' });
});

test('removal needs the int3 in memory', (t) => {
  const v = verifier();
  t.true(v.verify(patchRequest([install(K.func)])).ok);
  const r = v.verify(patchRequest([item('kprobe', K.func, [0x55], [0x55])]));
  t.regex(r.items![0]!.reason, /memory at 0xffffffff81002000 holds 55, not the kprobe's int3/);
});

test('the same site twice in one batch is refused the second time', (t) => {
  const v = verifier();
  const verdict = v.verify(patchRequest([install(K.func), install(K.func)]));
  t.deepEqual(
    verdict.items!.map((i) => i.ok),
    [true, false],
  );
  t.regex(verdict.items![1]!.reason, /appears twice in one batch/);
});

test('a malformed configuration denies every kprobe item, naming the problem', (t) => {
  t.is(parseKprobeConfig({ allow: 'everything' }), 'allow must be an array of {start, end}');
  t.is(parseKprobeConfig({ allow: [{ start: 'zz', end: '10' }] }), 'allow[0]: start and end must be hex addresses');
  t.is(parseKprobeConfig({ deny: [{ start: '20', end: '10' }] }), 'deny[0]: end 0x10 is not above start 0x20');
  const v = verifier({ allow: [{ start: h(K.text) }] });
  t.is(v.verify(patchRequest([install(K.func)])).items![0]!.reason, 'kprobe: invalid kprobe configuration: allow[0]: start and end must be hex addresses');
});

test('module text: probes need the module loaded, and a reloaded module does not inherit old probes', (t) => {
  const v = verifier();
  const site = MOD.text + 0x40n;
  t.regex(v.verify(patchRequest([install(site)])).items![0]!.reason, /not in kernel or verified module text/);
  const vm = v.vmState('vm0');
  vm.modules.set(MOD.name, syntheticModule());
  const a = v.verify(patchRequest([install(site, 0x0f)]));
  t.true(a.ok);
  t.regex(a.items![0]!.reason, /\(module synth_mod\)/);
  // Unload and load again (a new verified instance at the same address).
  vm.modules.delete(MOD.name);
  vm.modules.set(MOD.name, syntheticModule());
  t.regex(v.verify(patchRequest([remove(site, 0x0f)])).items![0]!.reason, /no kprobe is installed/);
});

test('a batch that is not ok records nothing (the core applies text patches all or nothing)', (t) => {
  const v = verifier();
  const verdict = v.verify(
    patchRequest([install(K.func), item('ftrace', K.mcount[0]!, [0x0f, 0x1f, 0x44, 0, 0], encodeCall32(K.mcount[0]!, K.fentry)), install(K.func + 0x18n)]),
  );
  t.false(verdict.ok);
  t.deepEqual(
    verdict.items!.map((i) => i.ok),
    [true, false, false],
  );
  t.is(installedKprobes({ ...context(), vm: v.vmState('vm0') }).size, 0);
  t.regex(v.verify(patchRequest([remove(K.func)])).items![0]!.reason, /no kprobe is installed/);
  t.true(v.verify(patchRequest([install(K.func)])).ok, 'the same install alone is allowed and recorded');
  t.is(installedKprobes({ ...context(), vm: v.vmState('vm0') }).size, 1);
});

test('abstains on other kinds, and keeps state per VM', (t) => {
  const r = kprobePlugin.decide(patchRequest([item('ftrace', K.mcount[0]!, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5])]), context({ config: CONFIG }));
  t.is(r.items![0]!.decision, 'abstain');
  const v = verifier();
  t.true(v.verify(patchRequest([install(K.func)], 'vm-a')).ok);
  t.regex(v.verify(patchRequest([remove(K.func)], 'vm-b')).items![0]!.reason, /no kprobe is installed/);
  t.true(v.verify(patchRequest([remove(K.func)], 'vm-a')).ok);
});
