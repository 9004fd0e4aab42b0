/**
 * static_call_update on the real Debian 6.1 kernel, end to end: the guest's StaticCalls builds
 * one batch (trampoline + every live site), the core freezes and snapshots, the verifier's
 * static-call plugin checks it against the signed manifest, and the bytes change. We do what
 * PREEMPT_DYNAMIC's sched_dynamic_update() does when switching to preempt=voluntary and back
 * (might_resched and cond_resched to __cond_resched, preempt_schedule to NULL), read every
 * site back through the vCPU, and show that a target inside a function, in kernel data or in
 * module data is refused with nothing written, while a module's function is a valid target.
 */
import { gva } from '../../shared/addr.ts';
import { vmlinuxTouchupContext } from '../../shared/kernel-image/touchup-tables.ts';
import { cpuWantsRethunkAt } from '../../shared/x86/touchups/context.ts';
import test from 'ava';
import { fixtures, needsFixtures } from '../helpers/fixtures.ts';
import { disposeForkBases, forkRealMachine } from '../helpers/real-machine.ts';
import type { SimulatedMachine } from '../../machine/simulated-machine.ts';
import { parseScenario, runScenario } from '../../scenario/index.ts';
import { bytesEqual, encodeStaticCall, formatBytes, type StaticCallRole } from '../../shared/x86/patch-encodings.ts';

const realTest = needsFixtures(test);
// Each test works on its own fork of one booted machine (none tests boot itself).
test.after.always(disposeForkBases);

/** The trampoline and live sites of `name`, with the bytes the vCPU reads there now. */
function snapshot(m: SimulatedMachine, name: string): { key: bigint; items: Array<{ at: bigint; role: StaticCallRole; bytes: Uint8Array }> } {
  const k = m.kernel!;
  const key = m.image.systemMap.address(`__SCK__${name}`)!;
  const info = k.staticCalls.key(key)!;
  const read = (at: bigint): Uint8Array => {
    const r = k.cpu.read(gva(at), 5);
    if (!r.ok) throw new Error(`cannot read 0x${at.toString(16)}`);
    return r.value;
  };
  return {
    key,
    items: [
      { at: info.trampoline, role: 'trampoline' as const, bytes: read(info.trampoline) },
      ...k.staticCalls.sites(key).map((s) => ({ at: s.site, role: (s.tail ? 'tail' : 'call') as StaticCallRole, bytes: read(s.site) })),
    ],
  };
}

/** How many of the key's instructions hold what static_call_update(name, func) writes. */
function matching(m: SimulatedMachine, name: string, func: bigint | null): { total: number; ok: number; first?: string } {
  const sym = m.image.systemMap;
  // The return form of this CPU model: jmp x86_return_thunk where cpu_wants_rethunk_at(), else ret; int3.
  const touch = vmlinuxTouchupContext(m.image, m.kernel!.bootCpuData);
  const symbols = {
    return0: sym.address('__static_call_return0')!,
    returnThunk: touch.symbols.x86ReturnThunk,
    rethunkAt: (site: bigint) => cpuWantsRethunkAt(touch, site),
  };
  const { items } = snapshot(m, name);
  const bad = items.filter((i) => !bytesEqual(i.bytes, encodeStaticCall(i.at, i.role, func, symbols)));
  return {
    total: items.length,
    ok: items.length - bad.length,
    ...(bad[0] ? { first: `${bad[0].role} 0x${bad[0].at.toString(16)}: ${formatBytes(bad[0].bytes)}` } : {}),
  };
}

realTest('static_call_update on the real kernel: keys move to another function and back, every site read through the vCPU', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const sym = m.image.systemMap;
  const condResched = sym.address('__cond_resched')!;
  const return0 = sym.address('__static_call_return0')!;

  // Boot pointed the sites at the key's function (static_call_init, then preempt=voluntary's update).
  const before = snapshot(m, 'might_resched');
  t.is(before.items.length, 1 + 592, 'the trampoline and 592 live sites');
  const tramp = before.items[0]!.at;
  t.true(before.items.slice(1).every((i) => i.bytes[0] === 0xe8));

  // preempt=voluntary: preempt_dynamic_enable(might_resched) -> __cond_resched.
  const on = await m.staticCall('__SCK__might_resched', '__cond_resched');
  t.is(on.outcome, 'allowed', on.reason);
  t.is(on.reason, 'static_call_update(might_resched, __cond_resched): the trampoline and 592 site(s) patched in 1 batch(es)');
  t.deepEqual(matching(m, 'might_resched', condResched), { total: 593, ok: 593 });
  const sig = m.kernel!.cpu.read(gva(tramp + 5n), 3);
  t.true(sig.ok && formatBytes(sig.value) === '0f b9 cc', 'the trampoline signature is untouched');

  // And back to the build-time __static_call_return0: call sites become the 5-byte xor.
  const off = await m.staticCall('__SCK__might_resched', '__static_call_return0');
  t.is(off.outcome, 'allowed', off.reason);
  t.deepEqual(matching(m, 'might_resched', return0), { total: 593, ok: 593 });
  t.is(formatBytes(snapshot(m, 'might_resched').items[1]!.bytes), '2e 2e 2e 31 c0');

  // cond_resched has 7 tail-call sites: they get jmp, the others call.
  const cr = await m.staticCall('__SCK__cond_resched', '__cond_resched');
  t.is(cr.outcome, 'allowed', cr.reason);
  t.deepEqual(matching(m, 'cond_resched', condResched), { total: 462, ok: 462 }, 'the trampoline and 461 live sites (4 are in .init.text)');
  t.is(snapshot(m, 'cond_resched').items.filter((i) => i.role === 'tail' && i.bytes[0] === 0xe9).length, 7);

  // preempt_dynamic_disable(preempt_schedule): NULL, every site a NOP5 (773 of its 781 sites are live); then back.
  const nul = await m.staticCall('__SCK__preempt_schedule', null);
  t.is(nul.outcome, 'allowed', nul.reason);
  t.deepEqual(matching(m, 'preempt_schedule', null), { total: 774, ok: 774 });
  const back = await m.staticCall('__SCK__preempt_schedule', 'preempt_schedule_thunk');
  t.is(back.outcome, 'allowed', back.reason);
  t.deepEqual(matching(m, 'preempt_schedule', sym.address('preempt_schedule_thunk')!), { total: 774, ok: 774 });

  const audited = m.audit.records().filter((r) => r['kind'] === 'text-patch');
  t.true(audited.length >= 5 && audited.slice(-5).every((r) => r['ok'] === true && r['applied'] === true));
});

realTest('a static call target inside a function, in data or in module data is denied and nothing changes; a module function is allowed', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const before = snapshot(m, 'might_resched').items.map((i) => formatBytes(i.bytes));
  const unchanged = (): boolean => snapshot(m, 'might_resched').items.every((i, n) => formatBytes(i.bytes) === before[n]);

  const mid = await m.staticCall('__SCK__might_resched', '__cond_resched+0x4');
  t.is(mid.outcome, 'denied');
  t.regex(mid.reason, /^text patch refused: -KVM_EPERM/);
  const record = m.audit
    .records()
    .filter((r) => r['kind'] === 'text-patch')
    .at(-1)!;
  t.like(record, { ok: false, applied: false });
  t.regex(String(record['reason']), /not a function entry point \(0x4 bytes into the kernel function at 0xffffffff81a52f80\)/);
  t.true(unchanged(), 'no site or trampoline byte changed');

  const data = await m.staticCall('__SCK__might_resched', 'jiffies');
  t.is(data.outcome, 'denied');
  t.regex(
    String(
      m.audit
        .records()
        .filter((r) => r['kind'] === 'text-patch')
        .at(-1)!['reason'],
    ),
    /not a function entry point \(outside kernel and module text\)/,
  );
  t.true(unchanged());

  // A signed module's function entry is a target; its data is not.
  const load = await m.loadModule(`${fixtures.modulesDir}/crc7.ko`);
  t.is(load.outcome, 'allowed', load.reason);
  const modData = await m.staticCall('__SCK__might_resched', 'crc7_be_syndrome_table');
  t.is(modData.outcome, 'denied');
  t.true(unchanged());
  const modFn = await m.staticCall('__SCK__might_resched', 'crc7_be');
  t.is(modFn.outcome, 'allowed', modFn.reason);
  const crc7Be = m.resolve('crc7_be');
  if (!crc7Be.ok) throw new Error(crc7Be.error);
  t.deepEqual(matching(m, 'might_resched', crc7Be.value), { total: 593, ok: 593 });

  // What the guest itself refuses (not a key, an unknown symbol) is an error, not a denial.
  t.like(await m.staticCall('jiffies', '__cond_resched'), { outcome: 'error' });
  t.like(await m.staticCall('__SCK__might_resched', 'no_such_function'), { outcome: 'error' });
});

realTest('a heki run scenario drives static-call steps on the real machine', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose()); // runScenario disposes it too; dispose is idempotent
  const s = parseScenario(
    `name: static-calls
steps:
  - static-call: { key: __SCK__might_resched, target: __cond_resched, expect: allowed }
  - static-call: { key: __SCK__might_resched, target: "__cond_resched+4", expect: denied }
  - static-call: { key: __SCK__preempt_schedule, target: null, expect: allowed }
  - static-call: { key: __SCK__might_resched, target: __static_call_return0, expect: allowed }
`,
    { path: '/tmp/static-calls.yaml' },
  );
  if (!s.ok) throw new Error(s.error.problems.map((p) => p.message).join('; '));
  const r = await runScenario(s.value, m);
  t.true(r.passed, JSON.stringify(r.steps));
  t.deepEqual(
    r.steps.map((x) => x.outcome),
    ['allowed', 'denied', 'allowed', 'allowed'],
  );
});
