/**
 * The scenario parser on malformed files: every kind of mistake is reported with its line
 * and a message that names the step, the key and the problem, and all problems of a file
 * are reported at once.
 */
import test from 'ava';
import { formatParseError, parseScenario } from '../../scenario/index.ts';

/** The `file:line: message` lines for `text` (fails the test if it parses). */
function problems(text: string): string[] {
  const r = parseScenario(text, { path: '/tmp/x/scenario.yaml', display: 'scenario.yaml' });
  if (r.ok) throw new Error('expected a parse error');
  return formatParseError(r.error).split('\n');
}

/** The single problem of a one-step scenario whose step is `yaml` (the step is on line 3). */
function stepProblem(yaml: string): string {
  const p = problems(`name: t\nsteps:\n  - ${yaml}\n`);
  if (p.length !== 1) throw new Error(`expected one problem, got:\n${p.join('\n')}`);
  return p[0]!;
}

test('the issue example: a bad mode names file, line, step, kind and key', (t) => {
  const text = `name: x
kernel: real
steps:
  - boot: {}
  - load-module: { path: some.ko }
  # a comment
  - write: { addr: "_stext+0x10", bytes: "90", mode: supervisor, expect: denied }
`;
  t.deepEqual(problems(text), [`scenario.yaml:7: step 3 (write): 'mode' must be kernel or user`]);
});

test('YAML syntax errors are reported with their line', (t) => {
  const p = problems('name: x\nsteps:\n  - boot: {}\n  - read: [\n');
  t.is(p.length, 1);
  t.regex(p[0]!, /^scenario\.yaml:4: YAML syntax error: /);
  t.regex(problems('name: x\n  bad: indent\nsteps: []\n')[0]!, /^scenario\.yaml:\d: YAML syntax error: /);
});

test('the whole file: empty, a list, a scalar', (t) => {
  t.deepEqual(problems(''), [`scenario.yaml:1: the file is empty; a scenario is a mapping with 'name' and 'steps'`]);
  t.deepEqual(problems('# only a comment\n'), [`scenario.yaml:1: the file is empty; a scenario is a mapping with 'name' and 'steps'`]);
  t.deepEqual(problems('- boot: {}\n'), [`scenario.yaml:1: a scenario must be a mapping with 'name' and 'steps', not a list`]);
  t.deepEqual(problems('hello\n'), [`scenario.yaml:1: a scenario must be a mapping with 'name' and 'steps', not a single value`]);
});

test('top level: unknown, duplicate and missing keys', (t) => {
  t.deepEqual(problems('name: x\nstpes: []\nsteps: [{boot: {}}]\n'), [
    `scenario.yaml:2: unknown top-level key 'stpes' (expected one of name, description, kernel, cpu, hypervisor, vmlinuz, system-map, keys, steps)`,
  ]);
  t.deepEqual(problems('name: x\nsteps: [{boot: {}}]\nname: y\n'), [`scenario.yaml:3: duplicate key 'name'`]);
  t.deepEqual(problems('steps: [{boot: {}}]\n'), [`scenario.yaml:1: missing required key 'name'`]);
  t.deepEqual(problems('name: x\n'), [`scenario.yaml:1: missing required key 'steps'`]);
  t.deepEqual(problems('name: ""\nsteps: [{boot: {}}]\n'), [`scenario.yaml:1: 'name' must not be empty`]);
  t.deepEqual(problems('name: [a]\nsteps: [{boot: {}}]\n'), [`scenario.yaml:1: 'name' must be a single value, not a list`]);
});

test('top level: kernel, vmlinuz, system-map, keys', (t) => {
  t.deepEqual(problems('name: x\nkernel: fake\nsteps: [{boot: {}}]\n'), [`scenario.yaml:2: 'kernel' must be real or synthetic`]);
  t.deepEqual(problems('name: x\nkernel: synthetic\nvmlinuz: v\nsteps: [{boot: {}}]\n'), [`scenario.yaml:3: 'vmlinuz' applies only to kernel: real`]);
  t.deepEqual(problems('name: x\nsystem-map: ""\nsteps: [{boot: {}}]\n'), [`scenario.yaml:2: 'system-map' must not be empty`]);
  t.deepEqual(problems('name: x\nkeys: [a]\nsteps: [{boot: {}}]\n'), [
    `scenario.yaml:2: 'keys' must be a mapping like { certs: [signing_key.x509.der] } (with one of pubkeys, certs, revoked)`,
  ]);
  t.deepEqual(problems('name: x\nkeys:\n  cert: [a]\nsteps: [{boot: {}}]\n'), [
    `scenario.yaml:3: keys: unknown key 'cert' (expected one of pubkeys, certs, revoked)`,
  ]);
  t.deepEqual(problems('name: x\nkeys:\n  certs: {a: b}\nsteps: [{boot: {}}]\n'), [`scenario.yaml:3: keys: 'certs' must be a list or a single value`]);
  t.deepEqual(problems('name: x\nkeys:\n  certs: [a, [b]]\nsteps: [{boot: {}}]\n'), [`scenario.yaml:3: keys: 'certs[1]' must be a single value, not a list`]);
  t.deepEqual(problems('name: x\nkeys:\n  certs: [""]\nsteps: [{boot: {}}]\n'), [`scenario.yaml:3: keys: 'certs' has an empty path`]);
});

test('steps: not a list, empty', (t) => {
  t.deepEqual(problems('name: x\nsteps: {boot: {}}\n'), [`scenario.yaml:2: 'steps' must be a list of steps, like '- boot: {}'`]);
  t.deepEqual(problems('name: x\nsteps:\n'), [`scenario.yaml:2: 'steps' must be a list of steps, like '- boot: {}'`]);
  t.deepEqual(problems('name: x\nsteps: []\n'), [`scenario.yaml:2: 'steps' is empty; a scenario needs at least one step`]);
});

test('a step that is not a one-key mapping', (t) => {
  t.is(stepProblem('boot'), `scenario.yaml:3: step 1: must be a mapping of one step kind to its parameters, like '- boot: {}'`);
  t.is(stepProblem('write'), `scenario.yaml:3: step 1: must be a mapping of one step kind to its parameters, like '- write: {}'`);
  t.is(stepProblem('[boot]'), `scenario.yaml:3: step 1: must be a mapping of one step kind to its parameters, like '- boot: {}'`);
  t.is(stepProblem('{}'), `scenario.yaml:3: step 1: is empty ({}); write its kind, like '- boot: {}'`);
  t.deepEqual(problems('name: x\nsteps:\n  -\n'), [`scenario.yaml:3: step 1: is empty; write its kind, like '- boot: {}'`]);
  t.is(
    stepProblem('wirte: {}'),
    `scenario.yaml:3: step 1: unknown step kind 'wirte' (expected one of: boot, load-module, unload-module, ftrace, jump-label, static-call, set-memory, text-poke, kprobe, bpf-jit, read, write, exec, write-cr, write-msr, hypercall, reboot, kexec, panic, hibernate, resume, migrate, cpu-online, save-memory)`,
  );
  t.is(stepProblem('boot: []'), `scenario.yaml:3: step 1 (boot): parameters must be a mapping, like '- boot: {}'`);
  t.is(stepProblem('write: _stext'), `scenario.yaml:3: step 1 (write): parameters must be a mapping, like '- write: {...}'`);
});

test('parameters at the wrong indentation, expect outside the parameters', (t) => {
  t.deepEqual(problems('name: x\nsteps:\n  - write:\n    addr: _stext\n    bytes: "90"\n'), [
    `scenario.yaml:4: step 1 (write): has sibling keys (addr, bytes); indent the parameters under 'write:' or start a new '- ' item for another step`,
  ]);
  t.deepEqual(problems('name: x\nsteps:\n  - boot: {}\n    expect: allowed\n'), [
    `scenario.yaml:4: step 1 (boot): 'expect' goes inside the step's parameters, like '- boot: {..., expect: denied}'`,
  ]);
});

test('unknown, duplicate and missing keys in a step', (t) => {
  t.deepEqual(problems('name: t\nsteps:\n  - write: { adr: _stext, bytes: "90" }\n'), [
    `scenario.yaml:3: step 1 (write): unknown key 'adr' (expected one of addr, bytes, mode, expect)`,
    `scenario.yaml:3: step 1 (write): missing required key 'addr'`,
  ]);
  t.is(stepProblem('boot: { fast: true }'), `scenario.yaml:3: step 1 (boot): unknown key 'fast' (this step takes no parameters besides 'expect')`);
  t.deepEqual(problems('name: t\nsteps:\n  - read:\n      addr: a\n      addr: b\n'), [`scenario.yaml:5: step 1 (read): duplicate key 'addr'`]);
  t.is(stepProblem('write: { addr: _stext }'), `scenario.yaml:3: step 1 (write): missing required key 'bytes'`);
  t.is(stepProblem('load-module: {}'), `scenario.yaml:3: step 1 (load-module): missing required key 'path'`);
  t.is(stepProblem('set-memory: { addr: x }'), `scenario.yaml:3: step 1 (set-memory): missing required key 'perm'`);
  t.is(stepProblem('write-msr: { msr: LSTAR }'), `scenario.yaml:3: step 1 (write-msr): missing required key 'value'`);
  t.is(stepProblem('hypercall: { args: [1] }'), `scenario.yaml:3: step 1 (hypercall): missing required key 'nr'`);
  t.is(stepProblem('bpf-jit: { size: 4 }'), `scenario.yaml:3: step 1 (bpf-jit): missing required key 'name'`);
  t.is(stepProblem('write: { addr: , bytes: "90" }'), `scenario.yaml:3: step 1 (write): 'addr' has no value`);
});

test('expect must be allowed, denied or error', (t) => {
  t.is(stepProblem('boot: { expect: stopped }'), `scenario.yaml:3: step 1 (boot): 'expect' must be one of allowed, denied, error`);
  t.is(stepProblem('boot: { expect: true }'), `scenario.yaml:3: step 1 (boot): 'expect' must be one of allowed, denied, error`);
  t.is(stepProblem('boot: { expect: failed }'), `scenario.yaml:3: step 1 (boot): 'expect' must be one of allowed, denied, error`);
});

test('addresses: syntax only, named precisely', (t) => {
  t.is(stepProblem('exec: { addr: 12345 }'), `scenario.yaml:3: step 1 (exec): 'addr' must be hex (0x...) or symbol[+offset], got '12345'`);
  t.is(stepProblem('exec: { addr: "foo bar" }'), `scenario.yaml:3: step 1 (exec): 'addr' must be hex (0x...) or symbol[+offset], got 'foo bar'`);
  t.is(stepProblem('exec: { addr: 0xzz }'), `scenario.yaml:3: step 1 (exec): 'addr' must be hex (0x...) or symbol[+offset], got '0xzz'`);
  t.is(stepProblem('exec: { addr: 0x1ffffffffffffffff }'), `scenario.yaml:3: step 1 (exec): 'addr' is above 2^64-1: '0x1ffffffffffffffff'`);
  t.is(
    stepProblem('exec: { addr: "_stext+zz" }'),
    `scenario.yaml:3: step 1 (exec): 'addr' has a bad offset in '_stext+zz': must be an integer (decimal, or hex with 0x), got 'zz'`,
  );
  t.is(
    stepProblem('exec: { addr: ffffffff81000000 }'),
    `scenario.yaml:3: step 1 (exec): 'addr' looks like a hex address without 0x: write 0xffffffff81000000 (got 'ffffffff81000000')`,
  );
  t.is(stepProblem('exec: { addr: [1] }'), `scenario.yaml:3: step 1 (exec): 'addr' must be a single value, not a list`);
  t.is(stepProblem('jump-label: { enable: "a b" }'), `scenario.yaml:3: step 1 (jump-label): 'enable' must be hex (0x...) or symbol[+offset], got 'a b'`);
});

test('hex bytes: odd digits, 0x prefix, non-hex, empty', (t) => {
  t.is(
    stepProblem('write: { addr: _stext, bytes: "9" }'),
    `scenario.yaml:3: step 1 (write): 'bytes' must be hex bytes like "90" or "0f 1f 44 00 00": '9' has an odd number of hex digits`,
  );
  t.is(
    stepProblem('write: { addr: _stext, bytes: 0x90 }'),
    `scenario.yaml:3: step 1 (write): 'bytes' must be hex bytes like "90" or "0f 1f 44 00 00" (without 0x), got '0x90'`,
  );
  t.is(
    stepProblem('write: { addr: _stext, bytes: "nop" }'),
    `scenario.yaml:3: step 1 (write): 'bytes' must be hex bytes like "90" or "0f 1f 44 00 00", got 'nop'`,
  );
  t.is(
    stepProblem('write: { addr: _stext, bytes: "" }'),
    `scenario.yaml:3: step 1 (write): 'bytes' must be hex bytes like "90" or "0f 1f 44 00 00", got an empty string`,
  );
  t.is(
    stepProblem('bpf-jit: { name: p, image: "0" }'),
    `scenario.yaml:3: step 1 (bpf-jit): 'image' must be hex bytes like "90" or "0f 1f 44 00 00": '0' has an odd number of hex digits`,
  );
});

test('wrong types: booleans, lists, mappings where values are expected', (t) => {
  t.is(stepProblem('kprobe: { addr: x, remove: yes }'), `scenario.yaml:3: step 1 (kprobe): 'remove' must be true or false`);
  t.is(stepProblem('bpf-jit: { name: p, size: 4, signed: 1 }'), `scenario.yaml:3: step 1 (bpf-jit): 'signed' must be true or false`);
  t.is(stepProblem('load-module: { path: true }'), `scenario.yaml:3: step 1 (load-module): 'path' must not be a boolean (got true)`);
  t.is(stepProblem('unload-module: { name: {a: 1} }'), `scenario.yaml:3: step 1 (unload-module): 'name' must be a single value, not a mapping`);
  t.is(stepProblem('read: { addr: x, mode: [kernel] }'), `scenario.yaml:3: step 1 (read): 'mode' must be a single value, not a list`);
  t.is(stepProblem('hypercall: { nr: 13, args: 4 }'), `scenario.yaml:3: step 1 (hypercall): 'args' must be a list`);
});

test('numbers: ranges and syntax', (t) => {
  t.is(stepProblem('read: { addr: x, len: 0 }'), `scenario.yaml:3: step 1 (read): 'len' must be between 1 and 65536, got '0'`);
  t.is(stepProblem('read: { addr: x, len: 65537 }'), `scenario.yaml:3: step 1 (read): 'len' must be between 1 and 65536, got '65537'`);
  t.is(stepProblem('read: { addr: x, len: -1 }'), `scenario.yaml:3: step 1 (read): 'len' must be an integer (decimal, or hex with 0x), got '-1'`);
  t.is(
    stepProblem('set-memory: { addr: x, perm: ro, pages: 1.5 }'),
    `scenario.yaml:3: step 1 (set-memory): 'pages' must be an integer (decimal, or hex with 0x), got '1.5'`,
  );
  t.is(stepProblem('bpf-jit: { name: p, size: 0 }'), `scenario.yaml:3: step 1 (bpf-jit): 'size' must be between 1 and 1048576, got '0'`);
  t.is(
    stepProblem('write-msr: { msr: LSTAR, value: 0x10000000000000000 }'),
    `scenario.yaml:3: step 1 (write-msr): 'value' must be at most 0xffffffffffffffff, got '0x10000000000000000'`,
  );
  t.is(stepProblem('write-msr: { msr: 0x100000000, value: 0 }'), `scenario.yaml:3: step 1 (write-msr): 'msr' must be at most 0xffffffff, got '0x100000000'`);
  t.is(
    stepProblem('hypercall: { nr: 13, args: [1, x] }'),
    `scenario.yaml:3: step 1 (hypercall): 'args[1]' must be an integer (decimal, or hex with 0x), got 'x'`,
  );
  t.is(stepProblem('hypercall: { nr: 13, args: [1, 2, 3, 4, 5] }'), `scenario.yaml:3: step 1 (hypercall): 'args' has 5 items; at most 4 allowed`);
});

test('choices: perm, kind, mode, ftrace targets, names', (t) => {
  t.is(stepProblem('set-memory: { addr: x, perm: rwx }'), `scenario.yaml:3: step 1 (set-memory): 'perm' must be one of ro, rw, x, nx, rox`);
  t.is(
    stepProblem('text-poke: { addr: x, bytes: "90", kind: alternative }'),
    `scenario.yaml:3: step 1 (text-poke): 'kind' must be one of ftrace, jump-label, static-call, kprobe`,
  );
  t.is(stepProblem('ftrace: { enable: "a b" }'), `scenario.yaml:3: step 1 (ftrace): 'enable' must be all, a glob (tcp_*) or a function name, got 'a b'`);
  t.is(stepProblem('ftrace: {}'), `scenario.yaml:3: step 1 (ftrace): needs 'enable' or 'disable'`);
  t.is(stepProblem('ftrace: { enable: all, disable: all }'), `scenario.yaml:3: step 1 (ftrace): takes 'enable' or 'disable', not both`);
  t.is(stepProblem('jump-label: {}'), `scenario.yaml:3: step 1 (jump-label): needs 'enable' or 'disable'`);
  t.is(stepProblem('static-call: { target: null }'), `scenario.yaml:3: step 1 (static-call): missing required key 'key'`);
  t.is(stepProblem('static-call: { key: __SCK__x }'), `scenario.yaml:3: step 1 (static-call): missing required key 'target'`);
  t.is(stepProblem('bpf-jit: { name: p }'), `scenario.yaml:3: step 1 (bpf-jit): needs 'image' or 'size'`);
  t.is(stepProblem('bpf-jit: { name: p, image: "c3", size: 1 }'), `scenario.yaml:3: step 1 (bpf-jit): takes 'image' or 'size', not both`);
  t.is(stepProblem('bpf-jit: { name: "a b", size: 1 }'), `scenario.yaml:3: step 1 (bpf-jit): 'name' must be 1 to 64 letters, digits, _, . or -, got 'a b'`);
  t.is(stepProblem('unload-module: {}'), `scenario.yaml:3: step 1 (unload-module): needs 'name' or 'path'`);
  t.is(stepProblem('unload-module: { name: crc7, path: crc7.ko }'), `scenario.yaml:3: step 1 (unload-module): takes 'name' or 'path', not both`);
  t.is(stepProblem('unload-module: { path: "" }'), `scenario.yaml:3: step 1 (unload-module): 'path' must not be empty`);
  t.is(
    stepProblem('unload-module: { name: "a/b" }'),
    `scenario.yaml:3: step 1 (unload-module): 'name' must be a module name like virtio_net (letters, digits, _ and -, at most 55), got 'a/b'`,
  );
  t.is(stepProblem('load-module: { path: "" }'), `scenario.yaml:3: step 1 (load-module): 'path' must not be empty`);
});

test('write-cr: register, bits, combinations', (t) => {
  t.is(
    stepProblem('write-cr: { cr: 2, value: 0 }'),
    `scenario.yaml:3: step 1 (write-cr): 'cr' must be 0, 3 or 4 (CR2 and CR8 are not moves a scenario can test), got '2'`,
  );
  t.is(stepProblem('write-cr: { cr: 4 }'), `scenario.yaml:3: step 1 (write-cr): needs 'value', or 'set' and/or 'clear'`);
  t.is(
    stepProblem('write-cr: { cr: 4, value: 0, set: SMEP }'),
    `scenario.yaml:3: step 1 (write-cr): 'value' replaces the whole register; it cannot be combined with 'set' or 'clear'`,
  );
  t.is(
    stepProblem('write-cr: { cr: 4, clear: [SMEPP] }'),
    `scenario.yaml:3: step 1 (write-cr): 'clear' has an unknown CR4 bit 'SMEPP' (known: VME, PVI, TSD, DE, PSE, PAE, MCE, PGE, PCE, OSFXSR, OSXMMEXCPT, UMIP, LA57, VMXE, SMXE, FSGSBASE, PCIDE, OSXSAVE, SMEP, SMAP, PKE, CET)`,
  );
  t.is(
    stepProblem('write-cr: { cr: 0, clear: SMEP }'),
    `scenario.yaml:3: step 1 (write-cr): 'clear' has an unknown CR0 bit 'SMEP' (known: PE, MP, EM, TS, ET, NE, WP, AM, NW, CD, PG)`,
  );
  t.is(
    stepProblem('write-cr: { cr: 3, set: PCD }'),
    `scenario.yaml:3: step 1 (write-cr): 'set' names a bit ('PCD') but CR3 has no named bits; give a hex mask`,
  );
  t.is(stepProblem('write-cr: { cr: 4, set: [SMEP], clear: [SMEP, SMAP] }'), `scenario.yaml:3: step 1 (write-cr): 'set' and 'clear' both name SMEP`);
  t.is(stepProblem('write-cr: { cr: 4, value: zz }'), `scenario.yaml:3: step 1 (write-cr): 'value' must be an integer (decimal, or hex with 0x), got 'zz'`);
});

test('write-msr and hypercall names', (t) => {
  t.is(
    stepProblem('write-msr: { msr: LSTARR, value: 0 }'),
    `scenario.yaml:3: step 1 (write-msr): 'msr' must be an MSR number or one of IA32_SYSENTER_CS, IA32_SYSENTER_ESP, IA32_SYSENTER_EIP, IA32_PAT, EFER, STAR, LSTAR, CSTAR, SYSCALL_MASK, FS_BASE, GS_BASE, KERNEL_GS_BASE, got 'LSTARR'`,
  );
  t.regex(
    stepProblem('hypercall: { nr: KVM_HC_NOPE }'),
    /^scenario\.yaml:3: step 1 \(hypercall\): 'nr' must be a number or a hypercall name \((?=[^)]*\bLOCK_CR_UPDATE\b)(?=[^)]*\bPROTECT_MEMORY\b)[^)]*\), got 'KVM_HC_NOPE'$/,
  );
});

test('every problem of a file is reported, in line order', (t) => {
  const p = problems(`name: t
bogus: 1
steps:
  - boot: {}
  - write: { addr: "_stext+0x10", bytes: "9", mode: kernel }
  - read: { addr: 12 }
  - frob: {}
  - exec: { addr: _stext, expect: maybe }
`);
  t.deepEqual(p, [
    `scenario.yaml:2: unknown top-level key 'bogus' (expected one of name, description, kernel, cpu, hypervisor, vmlinuz, system-map, keys, steps)`,
    `scenario.yaml:5: step 2 (write): 'bytes' must be hex bytes like "90" or "0f 1f 44 00 00": '9' has an odd number of hex digits`,
    `scenario.yaml:6: step 3 (read): 'addr' must be hex (0x...) or symbol[+offset], got '12'`,
    `scenario.yaml:7: step 4: unknown step kind 'frob' (expected one of: boot, load-module, unload-module, ftrace, jump-label, static-call, set-memory, text-poke, kprobe, bpf-jit, read, write, exec, write-cr, write-msr, hypercall, reboot, kexec, panic, hibernate, resume, migrate, cpu-online, save-memory)`,
    `scenario.yaml:8: step 5 (exec): 'expect' must be one of allowed, denied, error`,
  ]);
});

test('aliases are refused with a reason', (t) => {
  t.deepEqual(problems('name: t\nsteps:\n  - write: { addr: &a _stext, bytes: "90" }\n  - exec: { addr: *a }\n'), [
    `scenario.yaml:4: step 2 (exec): 'addr' must be a single value, not an alias (aliases are not supported in scenarios)`,
  ]);
});

test('the display name is used; without one, the path', (t) => {
  const r = parseScenario('name: x\n', { path: '/abs/dir/s.yaml' });
  t.false(r.ok);
  if (!r.ok) t.is(formatParseError(r.error), `/abs/dir/s.yaml:1: missing required key 'steps'`);
});

test('static-call: a bad key or target, an empty target, an unknown key', (t) => {
  t.is(stepProblem('static-call: { key: "a b", target: f }'), `scenario.yaml:3: step 1 (static-call): 'key' must be hex (0x...) or symbol[+offset], got 'a b'`);
  t.is(
    stepProblem('static-call: { key: __SCK__x, target: "f g" }'),
    `scenario.yaml:3: step 1 (static-call): 'target' must be hex (0x...) or symbol[+offset], got 'f g' (or null)`,
  );
  t.is(stepProblem('static-call: { key: __SCK__x, target: }'), `scenario.yaml:3: step 1 (static-call): 'target' has no value`);
  t.is(stepProblem('static-call: { key: __SCK__x, target: true }'), `scenario.yaml:3: step 1 (static-call): 'target' must not be a boolean (got true)`);
  t.is(
    stepProblem('static-call: { key: __SCK__x, target: f, func: g }'),
    `scenario.yaml:3: step 1 (static-call): unknown key 'func' (expected one of key, target, expect)`,
  );
});

test('lifecycle steps: unknown keys, bad values, a signer with a manifest file', (t) => {
  t.is(stepProblem('reboot: { hard: true }'), `scenario.yaml:3: step 1 (reboot): unknown key 'hard' (this step takes no parameters besides 'expect')`);
  t.is(stepProblem('resume: { tamper: yes }'), `scenario.yaml:3: step 1 (resume): 'tamper' must be true or false`);
  t.is(stepProblem('migrate: { to: host2 }'), `scenario.yaml:3: step 1 (migrate): unknown key 'to' (expected tamper or expect)`);
  t.is(stepProblem('kexec: { tamper: header }'), `scenario.yaml:3: step 1 (kexec): 'tamper' must be image or manifest`);
  t.is(stepProblem('kexec: { signer: me }'), `scenario.yaml:3: step 1 (kexec): 'signer' must be vendor or untrusted`);
  t.is(stepProblem('kexec: { image: "" }'), `scenario.yaml:3: step 1 (kexec): 'image' must not be empty`);
  t.is(stepProblem('kexec: { crash: 1 }'), `scenario.yaml:3: step 1 (kexec): 'crash' must be true or false`);
  t.is(
    stepProblem('kexec: { manifest: m.json, signer: untrusted }'),
    `scenario.yaml:3: step 1 (kexec): 'signer' chooses who signs the manifest the host builds; with 'manifest' the file's own signature counts`,
  );
});
