/**
 * The static-call plugin (verifier-vm/plugins/static-call.ts): static_call_update batches on
 * the synthetic kernel (every allowed form, every item denial, the per-key rules), through the
 * Verifier, and on the real fixture manifest (every key moved to NULL and to its build-time
 * function; targets inside a function or in data refused).
 */
import test from 'ava';
import { NOP5, RET5, XOR5RAX, encodeCall32, encodeJmp32, encodeStaticCall, formatBytes, type StaticCallRole } from '../../shared/x86/patch-encodings.ts';
import type { PatchItem } from '../../shared/protocol.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { checkStaticCallItem, staticCallPlugin } from '../../verifier-vm/plugins/static-call.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { indexManifest, type KernelManifest } from '../../verifier-vm/manifest.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { loadFixtureKernel, needsFixtures } from '../helpers/fixtures.ts';
import { fixtureManifest } from './plugin-fixture-manifest.ts';
import { K, MOD, SC, context, freshVm, item, patchRequest, syntheticBody, syntheticManifest, syntheticModule } from './plugin-synthetic.ts';

const A = SC.keyA;
const B = SC.keyB;
const SYMS = { return0: SC.return0, returnThunk: SC.returnThunk };

type Key = { readonly trampoline: bigint; readonly calls: readonly bigint[]; readonly tail?: bigint };

/** What the synthetic text holds at build time: sites call/jmp the trampoline, which jumps to K.func. */
function buildTime(at: bigint, role: StaticCallRole, key: Key): Uint8Array {
  if (role === 'trampoline') return encodeJmp32(at, K.func);
  return role === 'tail' ? encodeJmp32(at, key.trampoline) : encodeCall32(at, key.trampoline);
}

/** The live instructions of a key: trampoline first, then the sites. */
function instructions(key: Key): Array<{ at: bigint; role: StaticCallRole }> {
  return [
    { at: key.trampoline, role: 'trampoline' },
    ...key.calls.map((at) => ({ at, role: 'call' as const })),
    ...(key.tail === undefined ? [] : [{ at: key.tail, role: 'tail' as const }]),
  ];
}

/** A whole static_call_update batch for `key` to `func`, from the build-time bytes. */
function updateBatch(key: Key, func: bigint | null, symbols: { return0?: bigint; returnThunk?: bigint } = SYMS): PatchItem[] {
  return instructions(key).map(({ at, role }) => item('static-call', at, buildTime(at, role, key), encodeStaticCall(at, role, func, symbols)));
}

/** A context after the end-of-boot check (init text freed). */
function booted(opts: { manifest?: KernelManifest | undefined } = {}) {
  const vm = freshVm();
  vm.bootVerified = true;
  vm.modules.set(MOD.name, syntheticModule());
  return context({ vm, ...opts });
}

function decide(items: PatchItem[], ctx = booted()) {
  return staticCallPlugin.decide(patchRequest(items), ctx).items!;
}

function allAllowed(t: import('ava').ExecutionContext, items: PatchItem[], ctx = booted()): void {
  const r = decide(items, ctx);
  t.deepEqual(
    r.filter((x) => x.decision !== 'allow').map((x) => x.reason),
    [],
  );
  t.is(r.length, items.length);
}

test('a whole key moves to another kernel function: trampoline jmp, call sites call, the tail site jmp', (t) => {
  const items = updateBatch(A, SC.func2);
  const r = decide(items);
  t.true(r.every((x) => x.decision === 'allow'));
  t.is(r[0]!.reason, 'static-call trampoline __SCT__sc_a at 0xffffffff81004000 -> jmp 0xffffffff81003000 (kernel function)');
  t.is(r[1]!.reason, 'static-call site 0xffffffff81000a00 of __SCK__sc_a -> call 0xffffffff81003000 (kernel function)');
  t.is(r[3]!.reason, 'static-call tail-call site 0xffffffff81000c00 of __SCK__sc_a -> jmp 0xffffffff81003000 (kernel function)');
});

test('NULL: call sites become NOP5, the tail site and the trampoline return (jmp to the return thunk or ret)', (t) => {
  const items = updateBatch(A, null);
  t.deepEqual([...items[1]!.newBytes], [...NOP5]);
  t.deepEqual([...items[0]!.newBytes], [...encodeJmp32(A.trampoline, SC.returnThunk)]);
  allAllowed(t, items);
  t.is(decide(items)[1]!.reason, 'static-call site 0xffffffff81000a00 of __SCK__sc_a -> NULL');
  const ret = updateBatch(A, null, { return0: SC.return0 });
  t.deepEqual([...ret[0]!.newBytes], [...RET5], 'without the return thunk: ret; int3 x4');
  allAllowed(t, ret);
});

test('__static_call_return0: call sites get the 5-byte xor, tail site and trampoline jmp to it', (t) => {
  const items = updateBatch(A, SC.return0);
  t.deepEqual([...items[1]!.newBytes], [...XOR5RAX]);
  allAllowed(t, items);
  t.is(decide(items)[1]!.reason, 'static-call site 0xffffffff81000a00 of __SCK__sc_a -> __static_call_return0 (0xffffffff81005000)');
  // A direct call to __static_call_return0 is a call to a function entry too, and the same target.
  const direct = items.map((it) => (it.site === A.calls[0] ? item('static-call', it.site, it.oldBytes, encodeCall32(it.site, SC.return0)) : it));
  allAllowed(t, direct);
});

test("a verified module's function is a target; sites back on their trampoline follow it", (t) => {
  const modFn = MOD.text + 0x40n;
  allAllowed(t, updateBatch(A, modFn));
  t.regex(decide(updateBatch(A, modFn))[0]!.reason, /-> jmp 0xffffffffc0000040 \(module synth_mod function\)$/);
  // Restoring the build-time form: sites call the trampoline, the trampoline jumps to func2.
  const restore = instructions(A).map(({ at, role }) =>
    item('static-call', at, encodeStaticCall(at, role, SC.func2, SYMS), role === 'trampoline' ? encodeJmp32(at, SC.func2) : buildTime(at, role, A)),
  );
  allAllowed(t, restore);
  t.regex(decide(restore)[1]!.reason, /-> call its trampoline __SCT__sc_a$/);
});

test("denies a target inside a function, in data, in module text off an entry, or another key's trampoline", (t) => {
  const mid = decide(updateBatch(A, K.func + 0x10n));
  t.is(
    mid[1]!.reason,
    'static-call site 0xffffffff81000a00 of __SCK__sc_a: call to 0xffffffff81002010, which is not a function entry point (0x10 bytes into the kernel function at 0xffffffff81002000)',
  );
  t.true(mid.every((x) => x.decision === 'deny'));
  const data = decide(updateBatch(A, 0xffffffff82a00000n));
  t.regex(data[0]!.reason, /jmp to 0xffffffff82a00000, which is not a function entry point \(outside kernel and module text\)$/);
  const inMod = decide(updateBatch(A, MOD.text + 0x44n));
  t.regex(inMod[1]!.reason, /not a function entry point \(in the text of module synth_mod but at no function entry\)$/);
  const other = decide(updateBatch(A, B.trampoline));
  t.regex(other[1]!.reason, /call to 0xffffffff81004008, the trampoline of another key \(__SCT__sc_b\)$/);
});

test('denies a trampoline that jumps to itself', (t) => {
  const r = checkStaticCallItem(item('static-call', A.trampoline, encodeJmp32(A.trampoline, K.func), encodeJmp32(A.trampoline, A.trampoline)), booted());
  t.deepEqual(r.verdict, { decision: 'deny', reason: 'static-call trampoline __SCT__sc_a at 0xffffffff81004000 would jump to itself' });
});

test('denies the wrong instruction for the role: jmp at a call site, call at a tail site, other bytes', (t) => {
  const site = A.calls[0]!;
  const old = encodeCall32(site, A.trampoline);
  const jmp = checkStaticCallItem(item('static-call', site, old, encodeJmp32(site, SC.func2)), booted());
  t.is(
    jmp.verdict.reason,
    `static-call site 0xffffffff81000a00 of __SCK__sc_a: new bytes ${formatBytes(encodeJmp32(site, SC.func2))} are neither call rel32, NOP5 nor the xor that stands for __static_call_return0`,
  );
  const call = checkStaticCallItem(item('static-call', A.tail, encodeJmp32(A.tail, A.trampoline), encodeCall32(A.tail, SC.func2)), booted());
  t.regex(
    call.verdict.reason,
    /^static-call tail-call site 0xffffffff81000c00 of __SCK__sc_a: new bytes e8 .* are neither jmp rel32 nor a return \(c3 cc cc cc cc or jmp __x86_return_thunk\)$/,
  );
  const nopAtTail = checkStaticCallItem(item('static-call', A.tail, encodeJmp32(A.tail, A.trampoline), NOP5), booted());
  t.is(nopAtTail.verdict.decision, 'deny', 'a tail call cannot become a NOP: execution would fall through');
  t.is(checkStaticCallItem(item('static-call', site, old, [0xcc, 0x90, 0x90, 0x90, 0x90]), booted()).verdict.decision, 'deny');
});

test('denies an unknown site, no manifest, a length other than 5, old bytes that differ, .init.text after boot', (t) => {
  const site = A.calls[0]!;
  const old = encodeCall32(site, A.trampoline);
  const neu = encodeCall32(site, SC.func2);
  t.deepEqual(checkStaticCallItem(item('static-call', site + 1n, old, neu), booted()).verdict, {
    decision: 'deny',
    reason: '0xffffffff81000a01 is not a static-call site (no .static_call_sites entry or __SCT__ trampoline of the kernel)',
  });
  t.deepEqual(checkStaticCallItem(item('static-call', site, old, neu), booted({ manifest: undefined })).verdict, {
    decision: 'deny',
    reason: 'no kernel manifest loaded',
  });
  t.is(
    checkStaticCallItem(item('static-call', site, [0x66, 0x90], [0x66, 0x90]), booted()).verdict.reason,
    'patch at static-call site 0xffffffff81000a00 of __SCK__sc_a is 2 bytes, not 5',
  );
  t.is(
    checkStaticCallItem(item('static-call', site, old, neu, NOP5), booted()).verdict.reason,
    `old bytes differ from memory at 0xffffffff81000a00 (old ${formatBytes(old)}, memory 0f 1f 44 00 00)`,
  );
  const init = item('static-call', A.init, encodeCall32(A.init, A.trampoline), encodeCall32(A.init, SC.func2));
  t.is(checkStaticCallItem(init, booted()).verdict.reason, 'static-call site 0xffffffff83000300 of __SCK__sc_a is in .init.text, which is freed after boot');
  t.is(checkStaticCallItem(init, context()).verdict.decision, 'allow', 'before the boot check the init site is live');
});

test('key rule: every site of the key in the batch gets the same target', (t) => {
  const items = updateBatch(A, SC.func2);
  items[2] = item('static-call', A.calls[1]!, buildTime(A.calls[1]!, 'call', A), encodeCall32(A.calls[1]!, K.func));
  const r = decide(items);
  t.true(
    r.every((x) => x.decision === 'deny'),
    'every item of the key is refused',
  );
  const why =
    'static-call key __SCK__sc_a: its sites would get different targets (0xffffffff81003000 at 0xffffffff81004000, 0xffffffff81002000 at 0xffffffff81000b00); all sites of a key move together';
  t.true(r.every((x) => x.reason === why));
  // NULL at one site and a function at the others is a mix too.
  const mixed = updateBatch(A, SC.func2);
  mixed[1] = item('static-call', A.calls[0]!, buildTime(A.calls[0]!, 'call', A), NOP5);
  t.regex(decide(mixed)[0]!.reason, /different targets \(0xffffffff81003000 at 0xffffffff81004000, NULL at 0xffffffff81000a00\)/);
});

test('key rule: the batch carries every live site and the trampoline, each once', (t) => {
  const noSite = updateBatch(A, SC.func2).filter((it) => it.site !== A.tail);
  const r = decide(noSite);
  t.true(r.every((x) => x.decision === 'deny'));
  t.is(
    r[0]!.reason,
    'static-call key __SCK__sc_a: the batch patches 3 of its 4 live sites and trampoline; missing 0xffffffff81000c00; all sites of a key move together',
  );
  const noTramp = updateBatch(A, SC.func2).slice(1);
  t.regex(decide(noTramp)[0]!.reason, /missing its trampoline __SCT__sc_a \(0xffffffff81004000\); all sites/);
  const before = decide(updateBatch(A, SC.func2), context({ vm: freshVm() }));
  t.regex(
    before[0]!.reason,
    /the batch patches 4 of its 5 live sites and trampoline; missing 0xffffffff83000300/,
    'before the boot check the init site is required too',
  );
  const twice = [...updateBatch(A, SC.func2), updateBatch(A, SC.func2)[1]!];
  t.regex(decide(twice)[0]!.reason, /^static-call key __SCK__sc_a: 0xffffffff81000a00 appears twice in the batch$/);
});

test('key rule: one refused item refuses its key, and only its key', (t) => {
  const items = [...updateBatch(A, SC.func2), ...updateBatch(B, SC.func2)];
  items[1] = { ...items[1]!, currentBytes: Uint8Array.from(NOP5) };
  const r = decide(items);
  t.regex(r[1]!.reason, /^old bytes differ from memory/);
  t.is(r[0]!.reason, 'static-call key __SCK__sc_a: the patch at 0xffffffff81000a00 was denied, and all of a key moves together');
  t.deepEqual(
    r.slice(4).map((x) => x.decision),
    ['allow', 'allow'],
    'key B is untouched',
  );
});

test('through the Verifier: registered after jump-label, decides static-call items, abstains on others', (t) => {
  const names = BUILTIN_PLUGINS.map((p) => p.name);
  t.is(names.indexOf('static-call'), names.indexOf('jump-label') + 1);
  const v = new Verifier({ keyring: Keyring.empty(), plugins: BUILTIN_PLUGINS, manifest: syntheticManifest() });
  const ok = v.verify(patchRequest([...updateBatch(B, null), item('ftrace', K.mcount[0]!, NOP5, NOP5)]));
  t.true(ok.ok, ok.reason);
  t.deepEqual([...ok.plugins].sort(), ['ftrace', 'static-call']);
  const bad = v.verify(patchRequest(updateBatch(B, K.func + 1n)));
  t.false(bad.ok);
  t.regex(bad.reason, /^2 of 2 items denied; first: static-call: static-call trampoline __SCT__sc_b .* not a function entry point/);
});

test('a manifest without staticCalls (made before static calls) loads and allows no static-call patch', (t) => {
  const { staticCalls: _, ...old } = syntheticBody();
  const m = indexManifest(old, '0123456789abcdef');
  t.is(m.staticCalls.sites.size, 0);
  t.regex(decide(updateBatch(A, SC.func2), booted({ manifest: m }))[0]!.reason, /is not a static-call site/);
});

const fixtureTest = needsFixtures(test);

fixtureTest('real manifest: every key with live sites may move to NULL and to its build-time function; a mid-function target is refused', async (t) => {
  const k = await loadFixtureKernel();
  const manifest = fixtureManifest(k);
  const init = k.sectionByName('.init.text')!;
  const live = k.staticCalls.sites.filter((s) => !(s.site >= init.vaddr && s.site < init.vaddr + BigInt(init.size)));
  const symbols = { return0: manifest.staticCalls.return0!, returnThunk: manifest.staticCalls.returnThunk! };
  const bytes = (a: bigint, n: number): Uint8Array => k.readVirt(a, n)!.slice();
  let keys = 0;
  let items = 0;
  // After the boot check (bootVerified): init sites are gone and not required.
  const after = () => ({ ...context({ manifest }), vm: { ...freshVm(), bootVerified: true } });
  for (const key of k.staticCalls.keys) {
    const sites = live.filter((s) => s.key === key.key);
    if (sites.length === 0) continue;
    keys++;
    const func = key.func === 0n ? null : key.func!;
    for (const target of [null, func]) {
      const batch: PatchItem[] = [
        item('static-call', key.trampoline, bytes(key.trampoline, 5), encodeStaticCall(key.trampoline, 'trampoline', target, symbols)),
        ...sites.map((s) => item('static-call', s.site, bytes(s.site, 5), encodeStaticCall(s.site, s.tail ? 'tail' : 'call', target, symbols))),
      ];
      items += batch.length;
      const r = staticCallPlugin.decide(patchRequest(batch), after());
      const denied = r.items!.filter((x) => x.decision !== 'allow');
      if (denied.length > 0) t.fail(`__SCK__${key.name} -> ${target === null ? 'NULL' : target.toString(16)}: ${denied[0]!.reason}`);
    }
  }
  t.is(keys, 656);
  t.log(`${keys} keys, ${items} items allowed (${live.length} live sites of ${k.staticCalls.sites.length})`);
  // A target inside a function and one in data are refused.
  const cond = k.staticCalls.keys.find((x) => x.name === 'cond_resched')!;
  const sites = live.filter((s) => s.key === cond.key);
  const mid = k.systemMap.address('__cond_resched')! + 4n;
  const r = staticCallPlugin.decide(
    patchRequest(sites.map((s) => item('static-call', s.site, bytes(s.site, 5), encodeStaticCall(s.site, s.tail ? 'tail' : 'call', mid, symbols)))),
    after(),
  );
  t.regex(r.items![0]!.reason, /which is not a function entry point \(0x4 bytes into the kernel function at 0xffffffff81a52f80\)$/);
});
