/**
 * The scenario runner with a scripted machine: what each step calls, how outcomes meet
 * expectations, how a throwing, rejecting, hanging or nonsensical machine becomes `error`
 * outcomes without stopping the run, that dispose() is always called, and the exact result
 * shape `heki run --json` prints.
 */
import test from 'ava';
import type { StepOutcome } from '../../machine/machine-api.ts';
import { parseScenario, runScenario, ScriptedMachine, stepHolds, type MachineCall, type Scenario } from '../../scenario/index.ts';

function scenario(steps: string, name = 'run-test'): Scenario {
  const r = parseScenario(`name: ${name}\nsteps:\n${steps}`, { path: '/s/x.yaml' });
  if (!r.ok) throw new Error(r.error.problems.map((p) => `${p.line}: ${p.message}`).join('\n'));
  return r.value;
}

/** Answers by method: denied for the listed methods, allowed otherwise. */
function denying(...methods: string[]): (c: MachineCall) => StepOutcome {
  return (c) => (methods.includes(c.method) ? { outcome: 'denied', reason: `${c.method} refused` } : { outcome: 'allowed', reason: `${c.method} ok` });
}

test('each step kind calls its machine method with the parsed arguments', async (t) => {
  const m = new ScriptedMachine({
    symbols: { _stext: 0xffffffff81000000n, init_task: 0xffffffff82a1aa40n, key: 0xffffffff82000000n, __SCK__sc: 0xffffffff82a00100n },
  });
  const s = scenario(`  - boot: {}
  - load-module: { path: mods/crc7.ko }
  - unload-module: { name: crc7 }
  - ftrace: { enable: all }
  - ftrace: { disable: "tcp_*" }
  - jump-label: { enable: key }
  - static-call: { key: __SCK__sc, target: _stext }
  - static-call: { key: __SCK__sc, target: null }
  - set-memory: { addr: init_task, pages: 2, perm: rox }
  - text-poke: { addr: "_stext+5", bytes: "0f 1f 44 00 00", kind: ftrace }
  - text-poke: { addr: _stext, bytes: "cc" }
  - kprobe: { addr: _stext, remove: true }
  - bpf-jit: { name: p, image: "c3", signed: false }
  - read: { addr: init_task, len: 8, mode: user }
  - write: { addr: 0xffffffff81000010, bytes: "90" }
  - exec: { addr: init_task }
  - write-cr: { cr: 4, clear: [SMEP], set: SMAP }
  - write-cr: { cr: 3, value: 0x1000 }
  - write-msr: { msr: LSTAR, value: 0xffffffffdeadbeef }
  - hypercall: { nr: 13, args: [4, 0x100000] }
  - reboot: {}
  - kexec: { image: k/vmlinuz, crash: true }
  - kexec: { tamper: manifest, signer: untrusted }
  - panic: {}
  - hibernate: {}
  - resume: { tamper: true }
  - migrate: {}
`);
  const r = await runScenario(s, m);
  t.true(r.passed);
  t.deepEqual(
    m.calls.map((c) => [c.method, ...c.args]),
    [
      ['boot'],
      ['loadModule', '/s/mods/crc7.ko'],
      ['unloadModule', 'crc7'],
      ['ftrace', 'enable', 'all'],
      ['ftrace', 'disable', 'tcp_*'],
      ['jumpLabel', 'enable', 'key'],
      ['staticCall', '__SCK__sc', '_stext'],
      ['staticCall', '__SCK__sc', null],
      ['setMemory', 'init_task', 2, 'rox'],
      ['textPoke', '_stext+0x5', Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0), 'ftrace'],
      ['textPoke', '_stext', Uint8Array.of(0xcc), undefined],
      ['kprobe', '_stext', 'remove'],
      ['bpfJit', 'p', Uint8Array.of(0xc3), false],
      ['read', 'init_task', 8, 'user'],
      ['write', '0xffffffff81000010', Uint8Array.of(0x90), 'kernel'],
      ['exec', 'init_task', 'kernel'],
      ['writeCr', 4, { set: 1n << 21n, clear: 1n << 20n }],
      ['writeCr', 3, { value: 0x1000n }],
      ['writeMsr', 0xc0000082, 0xffffffffdeadbeefn],
      ['hypercall', 13, [4n, 0x100000n]],
      ['reboot'],
      ['kexec', { crash: true, signer: 'vendor', image: '/s/k/vmlinuz' }],
      ['kexec', { crash: false, signer: 'untrusted', tamper: 'manifest' }],
      ['panic'],
      ['hibernate'],
      ['resume', { tamper: true }],
      ['migrate', { tamper: false }],
    ],
  );
  t.is(m.disposed, 1);
});

test('ok: no expect and not error, or outcome equals expect', (t) => {
  t.true(stepHolds('allowed', null));
  t.true(stepHolds('denied', null));
  t.false(stepHolds('error', null));
  t.true(stepHolds('allowed', 'allowed'));
  t.true(stepHolds('denied', 'denied'));
  t.false(stepHolds('allowed', 'denied'));
  t.false(stepHolds('denied', 'allowed'));
  t.false(stepHolds('error', 'allowed'));
  t.false(stepHolds('error', 'denied'));
});

test('the result has exactly the contract shape and key order', async (t) => {
  const m = new ScriptedMachine({ answer: denying('write') });
  const r = await runScenario(
    scenario('  - boot: {}\n  - write: { addr: _stext, bytes: "90", expect: denied }\n  - exec: { addr: _stext, expect: denied }\n', 'shape'),
    m,
  );
  t.is(
    JSON.stringify(r),
    JSON.stringify({
      name: 'shape',
      passed: false,
      steps: [
        { index: 1, op: 'boot', outcome: 'allowed', reason: 'boot ok', expected: null, ok: true },
        { index: 2, op: 'write', outcome: 'denied', reason: 'write refused', expected: 'denied', ok: true },
        { index: 3, op: 'exec', outcome: 'allowed', reason: 'exec ok', expected: 'denied', ok: false },
      ],
    }),
  );
  t.deepEqual(Object.keys(r), ['name', 'passed', 'steps']);
  t.deepEqual(Object.keys(r.steps[0]!), ['index', 'op', 'outcome', 'reason', 'expected', 'ok']);
});

test('a failed step does not stop the run; passed only when every step holds', async (t) => {
  const m = new ScriptedMachine({ answer: denying('boot') });
  const r = await runScenario(scenario('  - boot: { expect: allowed }\n  - exec: { addr: _stext }\n  - exec: { addr: _stext, expect: allowed }\n'), m);
  t.false(r.passed);
  t.deepEqual(
    r.steps.map((s) => s.ok),
    [false, true, true],
  );
  t.is(m.calls.length, 3);
  t.is(m.disposed, 1);
});

test('an unknown symbol is an error outcome for that step, and the machine is not called', async (t) => {
  const m = new ScriptedMachine();
  const r = await runScenario(
    scenario('  - write: { addr: "nosuch+0x10", bytes: "90", expect: denied }\n  - jump-label: { disable: nokey }\n  - exec: { addr: _stext }\n'),
    m,
  );
  t.like(r.steps[0], { outcome: 'error', reason: `cannot resolve 'nosuch+0x10': unknown symbol 'nosuch'`, expected: 'denied', ok: false });
  t.like(r.steps[1], { outcome: 'error', reason: `cannot resolve 'nokey': unknown symbol 'nokey'`, ok: false });
  t.like(r.steps[2], { outcome: 'allowed', ok: true });
  t.deepEqual(
    m.calls.map((c) => c.method),
    ['exec'],
  );
  t.false(r.passed);
});

test('static-call resolves its key and its target before calling the machine; a null target is not resolved', async (t) => {
  const m = new ScriptedMachine({ symbols: { _stext: 0xffffffff81000000n, __SCK__sc: 0xffffffff82a00100n } });
  const r = await runScenario(
    scenario(
      '  - static-call: { key: __SCK__nosuch, target: _stext }\n  - static-call: { key: __SCK__sc, target: nosuch_fn }\n  - static-call: { key: __SCK__sc, target: null }\n',
    ),
    m,
  );
  t.like(r.steps[0], { outcome: 'error', reason: `cannot resolve '__SCK__nosuch': unknown symbol '__SCK__nosuch'` });
  t.like(r.steps[1], { outcome: 'error', reason: `cannot resolve 'nosuch_fn': unknown symbol 'nosuch_fn'` });
  t.like(r.steps[2], { outcome: 'allowed', ok: true });
  t.deepEqual(
    m.calls.map((c) => [c.method, ...c.args]),
    [['staticCall', '__SCK__sc', null]],
  );
});

test('a machine call that throws, rejects or returns nonsense is an error naming it', async (t) => {
  const m = new ScriptedMachine({
    answer: (c) => {
      if (c.method === 'boot') throw new RangeError('boom');
      if (c.method === 'loadModule') return Promise.reject(new Error('no such file'));
      if (c.method === 'ftrace') return { outcome: 'maybe', reason: 'x' } as unknown as StepOutcome;
      if (c.method === 'read') return undefined as unknown as StepOutcome;
      if (c.method === 'exec') return { outcome: 'denied', reason: 42 } as unknown as StepOutcome;
      return { outcome: 'allowed', reason: 'fine' };
    },
  });
  const r = await runScenario(
    scenario(`  - boot: {}
  - load-module: { path: a.ko, expect: allowed }
  - ftrace: { enable: all }
  - read: { addr: _stext }
  - exec: { addr: _stext, expect: denied }
  - write-msr: { msr: LSTAR, value: 0 }
`),
    m,
  );
  t.deepEqual(
    r.steps.map((s) => [s.outcome, s.reason, s.ok]),
    [
      ['error', 'machine.boot() threw RangeError: boom', false],
      ['error', 'machine.loadModule() threw Error: no such file', false],
      ['error', 'machine.ftrace() returned a malformed outcome: {"outcome":"maybe","reason":"x"}', false],
      ['error', 'machine.read() returned a malformed outcome: undefined', false],
      ['denied', '42', true],
      ['allowed', 'fine', true],
    ],
  );
  t.is(m.disposed, 1);
});

test('resolve throwing is an error outcome too', async (t) => {
  const m = new ScriptedMachine();
  m.resolve = () => {
    throw new Error('map not loaded');
  };
  const r = await runScenario(scenario('  - exec: { addr: _stext }\n  - boot: {}\n'), m);
  t.deepEqual(
    r.steps.map((s) => s.outcome),
    ['error', 'allowed'],
  );
  t.is(r.steps[0]!.reason, `machine.resolve('_stext') threw Error: map not loaded`);
});

test('a malformed resolve answer is an error outcome, not a crash', async (t) => {
  const m = new ScriptedMachine();
  m.resolve = () => undefined as never;
  const r = await runScenario(scenario('  - exec: { addr: _stext }\n'), m);
  t.like(r.steps[0], { outcome: 'error', reason: `cannot resolve '_stext': malformed answer undefined` });
  t.is(m.disposed, 1);
});

test('a step that hangs times out; the rest are not run; dispose is still called', async (t) => {
  const m = new ScriptedMachine({ answer: (c) => (c.method === 'boot' ? new Promise<StepOutcome>(() => {}) : { outcome: 'allowed', reason: 'ok' }) });
  const r = await runScenario(scenario('  - exec: { addr: _stext }\n  - boot: {}\n  - exec: { addr: _stext }\n'), m, undefined, { stepTimeoutMs: 50 });
  t.deepEqual(
    r.steps.map((s) => [s.outcome, s.reason]),
    [
      ['allowed', 'ok'],
      ['error', 'machine.boot() did not finish within 0.05 s'],
      ['error', `not run: step 2 (boot) timed out and the machine's state is unknown`],
    ],
  );
  t.deepEqual(
    m.calls.map((c) => c.method),
    ['exec', 'boot'],
  );
  t.is(m.disposed, 1);
});

test('dispose failing or hanging is a warning, not a crash; the result stands', async (t) => {
  const warnings: string[] = [];
  const a = new ScriptedMachine({ onDispose: () => Promise.reject(new Error('worker stuck')) });
  const ra = await runScenario(scenario('  - boot: {}\n'), a, undefined, { onWarning: (w) => warnings.push(w) });
  t.true(ra.passed);
  t.is(a.disposed, 1);
  const b = new ScriptedMachine({ onDispose: () => new Promise<void>(() => {}) });
  const rb = await runScenario(scenario('  - boot: {}\n'), b, undefined, { disposeTimeoutMs: 20, onWarning: (w) => warnings.push(w) });
  t.true(rb.passed);
  t.deepEqual(warnings, ['machine.dispose() threw Error: worker stuck', 'machine.dispose() did not finish within 0.02 s']);
});

test('onStep sees each result in order; an observer that throws is a warning', async (t) => {
  const seen: Array<[number, string]> = [];
  const warnings: string[] = [];
  const m = new ScriptedMachine({ answer: () => ({ outcome: 'denied', reason: 'no', detail: { pages: 1 } }) });
  const r = await runScenario(
    scenario('  - boot: {}\n  - exec: { addr: _stext }\n'),
    m,
    (res, step, outcome) => {
      seen.push([res.index, `${step.op}/${outcome.outcome}/${String(outcome.detail?.['pages'])}`]);
      throw new Error('observer bug');
    },
    { onWarning: (w) => warnings.push(w) },
  );
  t.deepEqual(seen, [
    [1, 'boot/denied/1'],
    [2, 'exec/denied/1'],
  ]);
  t.is(warnings.length, 2);
  t.regex(warnings[0]!, /step observer threw Error: observer bug/);
  t.true(r.passed);
  t.is(m.disposed, 1);
});

test('the machine gets copies of byte arrays: it cannot change the scenario', async (t) => {
  const s = scenario('  - write: { addr: _stext, bytes: "90" }\n');
  const m = new ScriptedMachine();
  m.write = (_a, bytes) => {
    bytes.fill(0);
    return Promise.resolve({ outcome: 'allowed', reason: 'ok' });
  };
  await runScenario(s, m);
  const w = s.steps[0]!;
  t.true(w.op === 'write' && w.bytes[0] === 0x90);
});

test("a denied step says the verifier's reason when the machine recorded one during it, unless it says it already", async (t) => {
  // The guest saw only -KVM_EPERM; the machine's verdict record says why (the audit log).
  const denials: string[] = [];
  class Recording extends ScriptedMachine {
    verdictMark(): number {
      return denials.length;
    }
    deniedSince(mark: number): string[] {
      return denials.slice(mark);
    }
  }
  const m = new Recording({
    answer: (c) => {
      if (c.method === 'loadModule') {
        denials.push('module-load crc7: module-pkcs7: unknown signer', 'module-load crc7: module-end-state: bytes differ');
        return { outcome: 'denied', reason: 'the hypervisor refused module crc7: -KVM_EPERM' };
      }
      if (c.method === 'exec') return { outcome: 'denied', reason: '#PF (nx)' };
      if (c.method === 'textPoke') {
        denials.push('text-patch 1 patches: ftrace: not a site');
        return { outcome: 'denied', reason: 'text patch refused (text-patch 1 patches: ftrace: not a site)' };
      }
      return { outcome: 'allowed', reason: 'ok' };
    },
  });
  const r = await runScenario(
    scenario(
      "  - boot: {}\n  - load-module: { path: /m/crc7.ko, expect: denied }\n  - exec: { addr: _stext, expect: denied }\n  - text-poke: { addr: _stext, bytes: '90', expect: denied }\n",
    ),
    m,
  );
  t.true(r.passed);
  t.is(r.steps[1]!.reason, 'the hypervisor refused module crc7: -KVM_EPERM; verifier: module-load crc7: module-pkcs7: unknown signer (and 1 more denial)');
  t.is(r.steps[2]!.reason, '#PF (nx)', 'no verdict during the step: the reason is unchanged');
  t.is(r.steps[3]!.reason, 'text patch refused (text-patch 1 patches: ftrace: not a site)', 'the reason already names the denial');
});
