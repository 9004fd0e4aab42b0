/**
 * The scenario parser on well-formed files: every step kind with every key, defaults,
 * 64-bit values kept exact, hex bytes, paths resolved against the file's folder, and the
 * value spellings the format accepts.
 */
import test from 'ava';
import { isAbsolute } from 'node:path';
import { parseScenario, type Scenario, type Step } from '../../scenario/index.ts';
import { generateJitImage } from '../../scenario/steps.ts';

const PATH = '/work/scenarios/s.yaml';

function parse(text: string): Scenario {
  const r = parseScenario(text, { path: PATH, display: 's.yaml' });
  if (!r.ok) throw new Error(r.error.problems.map((p) => `${p.line}: ${p.message}`).join('\n'));
  return r.value;
}

/** The action of a one-step scenario. */
function step(yaml: string): Step {
  const s = parse(`name: t\nsteps:\n  - ${yaml}\n`);
  return s.steps[0]!;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

test('the issue example parses, with paths resolved against the file folder', (t) => {
  const s = parse(`name: load-and-trace
kernel: real
vmlinuz: k/vmlinuz
system-map: /abs/System.map
keys: { pubkeys: [a.pub.json], certs: [../c.der], revoked: [r.txt] }
steps:
  - boot: {}
  - load-module: { path: some.ko, expect: allowed }
  - ftrace: { enable: all, expect: allowed }
  - write: { addr: "_stext+0x10", bytes: "90", mode: kernel, expect: denied }
`);
  t.is(s.name, 'load-and-trace');
  t.is(s.kernel, 'real');
  t.is(s.file, PATH);
  t.is(s.vmlinuz, '/work/scenarios/k/vmlinuz');
  t.is(s.systemMap, '/abs/System.map');
  t.deepEqual(s.keys, { pubkeys: ['/work/scenarios/a.pub.json'], certs: ['/work/c.der'], revoked: ['/work/scenarios/r.txt'] });
  t.deepEqual(
    s.steps.map((x) => [x.index, x.op, x.expect, x.line]),
    [
      [1, 'boot', null, 7],
      [2, 'load-module', 'allowed', 8],
      [3, 'ftrace', 'allowed', 9],
      [4, 'write', 'denied', 10],
    ],
  );
  t.like(s.steps[1], { op: 'load-module', path: '/work/scenarios/some.ko' });
  t.like(s.steps[2], { op: 'ftrace', action: 'enable', target: 'all' });
  const w = s.steps[3]!;
  t.true(w.op === 'write' && w.addr === '_stext+0x10' && w.mode === 'kernel' && hex(w.bytes) === '90');
});

test('defaults: kernel real, no keys, no description', (t) => {
  const s = parse('name: x\nsteps: [ {boot: {}} ]\n');
  t.is(s.kernel, 'real');
  t.deepEqual(s.keys, { pubkeys: [], certs: [], revoked: [] });
  t.is(s.description, undefined);
  t.is(s.vmlinuz, undefined);
});

test('kernel synthetic, a description, keys as single strings, an empty boot', (t) => {
  const s = parse('name: x\ndescription: hello\nkernel: synthetic\nkeys:\n  certs: c.der\nsteps:\n  - boot:\n');
  t.is(s.kernel, 'synthetic');
  t.is(s.description, 'hello');
  t.deepEqual(s.keys.certs, ['/work/scenarios/c.der']);
  t.like(s.steps[0], { op: 'boot', expect: null });
});

test('unload-module, jump-label, kprobe', (t) => {
  t.like(step('unload-module: { name: virtio_net }'), { op: 'unload-module', name: 'virtio_net' });
  // Issue 15 class 10: a path, as load-module takes, resolved against the scenario's folder.
  const byPath = step('unload-module: { path: mods/dm-mod.ko, expect: allowed }');
  t.like(byPath, { op: 'unload-module', expect: 'allowed' });
  t.true('path' in byPath && isAbsolute(byPath.path) && byPath.path.endsWith('/mods/dm-mod.ko'));
  t.like(step('load-module: { path: corrupt.ko, expect: error }'), { op: 'load-module', expect: 'error' });
  t.like(step('jump-label: { enable: sched_schedstats }'), { op: 'jump-label', action: 'enable', key: 'sched_schedstats' });
  t.like(step('jump-label: { disable: 0xffffffff82a00000 }'), { op: 'jump-label', action: 'disable', key: '0xffffffff82a00000' });
  t.like(step('kprobe: { addr: do_sys_open }'), { op: 'kprobe', addr: 'do_sys_open', action: 'install' });
  t.like(step('kprobe: { addr: do_sys_open+4, remove: true }'), { op: 'kprobe', addr: 'do_sys_open+0x4', action: 'remove' });
  t.like(step('ftrace: { disable: "tcp_*" }'), { op: 'ftrace', action: 'disable', target: 'tcp_*' });
});

test('static-call: key and target addresses, or a null target (null, ~ or "null")', (t) => {
  t.deepEqual(
    { ...step('static-call: { key: __SCK__might_resched, target: __cond_resched }') },
    { op: 'static-call', key: '__SCK__might_resched', target: '__cond_resched', index: 1, line: 3, expect: null },
  );
  t.like(step('static-call: { key: 0xffffffff82a5de10, target: "__cond_resched+0" , expect: allowed }'), {
    key: '0xffffffff82a5de10',
    target: '__cond_resched',
    expect: 'allowed',
  });
  for (const nul of ['null', '~', '"null"', 'NULL'])
    t.like(step(`static-call: { key: __SCK__cond_resched, target: ${nul} }`), { op: 'static-call', target: null });
  t.like(step('static-call:\n      key: __SCK__cond_resched\n      target: null\n      expect: denied'), { op: 'static-call', target: null, expect: 'denied' });
});

test('set-memory: pages default 1, every perm', (t) => {
  t.like(step('set-memory: { addr: init_task, perm: x }'), { op: 'set-memory', addr: 'init_task', pages: 1, perm: 'x' });
  for (const perm of ['ro', 'rw', 'x', 'nx', 'rox']) t.like(step(`set-memory: { addr: init_task, pages: 0x10, perm: ${perm} }`), { pages: 16, perm });
});

test('text-poke: bytes with spaces, optional kind', (t) => {
  const a = step('text-poke: { addr: "_stext+0x10", bytes: "e8 00 00 00 00", kind: ftrace }');
  t.true(a.op === 'text-poke' && hex(a.bytes) === 'e800000000' && a.kind === 'ftrace');
  const b = step('text-poke: { addr: _stext, bytes: 6690 }');
  t.true(b.op === 'text-poke' && hex(b.bytes) === '6690' && !('kind' in b));
});

test('bpf-jit: an explicit image, a generated one, signed by default', (t) => {
  const a = step('bpf-jit: { name: prog1, image: "55 48 89 e5 c9 c3" }');
  t.true(a.op === 'bpf-jit' && a.name === 'prog1' && hex(a.image) === '554889e5c9c3' && a.signed);
  const b = step('bpf-jit: { name: prog2, size: 32, signed: false }');
  t.true(b.op === 'bpf-jit' && b.image.length === 32 && !b.signed);
  if (b.op === 'bpf-jit') t.deepEqual(b.image, generateJitImage(32));
});

test('generated JIT images: the BPF prologue and leave; ret, or NOPs and ret when tiny', (t) => {
  t.is(hex(generateJitImage(12)), '0f1f440000554889e590c9c3');
  t.is(hex(generateJitImage(3)), '9090c3');
  t.is(hex(generateJitImage(1)), 'c3');
});

test('read, write, exec: mode defaults to kernel, len to 1', (t) => {
  t.like(step('read: { addr: jiffies }'), { op: 'read', addr: 'jiffies', len: 1, mode: 'kernel' });
  t.like(step('read: { addr: jiffies, len: 8, mode: user }'), { len: 8, mode: 'user' });
  t.like(step('exec: { addr: init_task }'), { op: 'exec', mode: 'kernel' });
  t.like(step('exec: { addr: 0x400000, mode: user }'), { addr: '0x400000', mode: 'user' });
  const w = step('write: { addr: modprobe_path, bytes: 2f746d70 }');
  t.true(w.op === 'write' && hex(w.bytes) === '2f746d70' && w.mode === 'kernel');
});

test('unquoted hex keeps all 64 bits; unquoted digits stay hex bytes', (t) => {
  t.like(step('exec: { addr: 0xffffffff81000001 }'), { addr: '0xffffffff81000001' });
  t.like(step('write-msr: { msr: LSTAR, value: 0xffffffff81000001 }'), { value: 0xffffffff81000001n });
  const w = step('write: { addr: _stext, bytes: 90909090 }');
  t.true(w.op === 'write' && hex(w.bytes) === '90909090');
  const z = step('write: { addr: _stext, bytes: 00 }');
  t.true(z.op === 'write' && hex(z.bytes) === '00');
});

test('address expressions are canonicalised: lowercase hex, hex offsets, no spaces', (t) => {
  t.like(step('exec: { addr: 0xFFFFFFFF81000000 }'), { addr: '0xffffffff81000000' });
  t.like(step('exec: { addr: "_stext + 16" }'), { addr: '_stext+0x10' });
  t.like(step('exec: { addr: "_stext-0x10" }'), { addr: '_stext-0x10' });
  t.like(step('exec: { addr: "_stext+0" }'), { addr: '_stext' });
  t.like(step('exec: { addr: do_one_initcall.cold }'), { addr: 'do_one_initcall.cold' });
});

test('write-cr: names, lists, masks, full values', (t) => {
  t.like(step('write-cr: { cr: 4, clear: [SMEP] }'), { op: 'write-cr', cr: 4, clear: 1n << 20n });
  t.like(step('write-cr: { cr: cr4, clear: "smep|SMAP", set: [0x800] }'), { cr: 4, clear: (1n << 20n) | (1n << 21n), set: 0x800n });
  t.like(step('write-cr: { cr: 0, clear: WP }'), { cr: 0, clear: 1n << 16n });
  t.like(step('write-cr: { cr: 3, value: 0x1000 }'), { cr: 3, value: 0x1000n });
  const s = step('write-cr: { cr: 4, set: [SMEP, SMAP, UMIP] }');
  t.true(s.op === 'write-cr' && s.set === ((1n << 20n) | (1n << 21n) | (1n << 11n)) && s.value === undefined && s.clear === undefined);
});

test('write-msr: names with the spellings Linux uses, or numbers', (t) => {
  t.like(step('write-msr: { msr: LSTAR, value: 0 }'), { msr: 0xc0000082, value: 0n });
  t.like(step('write-msr: { msr: MSR_LSTAR, value: 1 }'), { msr: 0xc0000082 });
  t.like(step('write-msr: { msr: ia32_sysenter_eip, value: 1 }'), { msr: 0x176 });
  t.like(step('write-msr: { msr: IA32_EFER, value: 0xd01 }'), { msr: 0xc0000080, value: 0xd01n });
  t.like(step('write-msr: { msr: SYSCALL_MASK, value: 1 }'), { msr: 0xc0000084 });
  t.like(step('write-msr: { msr: 0xc0000081, value: 1 }'), { msr: 0xc0000081 });
});

test('hypercall: numbers or names, args hex or decimal, none by default', (t) => {
  t.like(step('hypercall: { nr: 13, args: [4, 0x100000, 0] }'), { op: 'hypercall', nr: 13, args: [4n, 0x100000n, 0n] });
  t.like(step('hypercall: { nr: KVM_HC_PROTECT_MEMORY }'), { nr: 14, args: [] });
  t.like(step('hypercall: { nr: lock_cr_update, args: [0xffffffffffffffff] }'), { nr: 13, args: [0xffffffffffffffffn] });
});

test('lifecycle steps: reboot, panic and hibernate take nothing; resume and migrate a tamper flag', (t) => {
  t.like(step('reboot: {}'), { op: 'reboot' });
  t.like(step('panic:'), { op: 'panic' });
  t.like(step('hibernate: { expect: allowed }'), { op: 'hibernate', expect: 'allowed' });
  t.like(step('resume: {}'), { op: 'resume', tamper: false });
  t.like(step('resume: { tamper: true, expect: denied }'), { op: 'resume', tamper: true, expect: 'denied' });
  t.like(step('migrate: {}'), { op: 'migrate', tamper: false });
  t.like(step('migrate: { tamper: true }'), { op: 'migrate', tamper: true });
});

test('kexec: image, manifest and System.map resolved against the file folder; crash, tamper, signer', (t) => {
  t.deepEqual(step('kexec: {}'), { op: 'kexec', crash: false, signer: 'vendor', index: 1, line: 3, expect: null });
  t.like(step('kexec: { image: k/vmlinuz, manifest: /m.json, system-map: k/System.map, expect: allowed }'), {
    op: 'kexec',
    image: '/work/scenarios/k/vmlinuz',
    manifest: '/m.json',
    systemMap: '/work/scenarios/k/System.map',
    crash: false,
    signer: 'vendor',
  });
  t.like(step('kexec: { crash: true, tamper: image }'), { crash: true, tamper: 'image' });
  t.like(step('kexec: { tamper: manifest, signer: untrusted }'), { tamper: 'manifest', signer: 'untrusted' });
});

test('block-style steps and comments parse like flow style', (t) => {
  const s = parse(`name: block
steps:
  # a comment
  - write:
      addr: _stext
      bytes: "90"   # nop
      expect: denied
`);
  t.like(s.steps[0], { op: 'write', addr: '_stext', expect: 'denied', line: 4 });
});

test('cpu: a named model is kept as written, any other value is a folder beside the scenario', (t) => {
  t.is(parse('name: t\ncpu: epyc-smp2\nsteps:\n  - boot: {}\n').cpu, 'epyc-smp2');
  t.is(parse('name: t\ncpu: models/mine\nsteps:\n  - boot: {}\n').cpu, '/work/scenarios/models/mine');
  t.is(parse('name: t\nsteps:\n  - boot: {}\n').cpu, undefined);
  const bad = parseScenario('name: t\nkernel: synthetic\ncpu: qemu64-up\nsteps:\n  - boot: {}\n', { path: PATH });
  t.false(bad.ok);
  if (!bad.ok) t.regex(bad.error.problems[0]!.message, /'cpu' applies only to kernel: real/);
});

test('cpu-online takes nothing; save-memory an address, a bounded len and an out path beside the scenario', (t) => {
  t.deepEqual(step('cpu-online: {}'), { op: 'cpu-online', index: 1, line: 3, expect: null });
  t.like(step('save-memory: { addr: _stext, len: 0x1000, out: dumps/text.bin }'), {
    op: 'save-memory',
    addr: '_stext',
    len: 4096,
    out: '/work/scenarios/dumps/text.bin',
  });
  const cases: Array<[string, RegExp]> = [
    ['save-memory: { addr: _stext, out: x.bin }', /missing required key 'len'/],
    ['save-memory: { addr: _stext, len: 1 }', /missing required key 'out'/],
    ['save-memory: { addr: _stext, len: 0x4000001, out: x.bin }', /'len' must be between 1 and 67108864/],
    ['save-memory: { addr: _stext, len: 1, out: "" }', /'out' must not be empty/],
  ];
  for (const [yaml, re] of cases) {
    const r = parseScenario(`name: t\nsteps:\n  - ${yaml}\n`, { path: PATH });
    t.false(r.ok, yaml);
    if (!r.ok) t.regex(r.error.problems.map((p) => p.message).join(' | '), re, yaml);
  }
});
