/**
 * Fuzzing the structured inputs that cross a trust boundary (issue 5, part 3): signed kernel
 * manifests (verifier-vm/manifest.ts), scenario files (scenario/) and verifier protocol
 * messages (shared/protocol.ts).
 *
 * Attack: a tampered manifest, a hostile scenario file (YAML alias bombs, wrong types, huge
 * numbers), or a request message of the wrong shape sent to the verifier VM, hoping that a
 * parser throws (a crashed verifier denies everything, a crashed CLI leaves no verdict) or
 * hangs.
 * Expected stop: a typed error naming the problem, or a valid result; never a throw, never
 * more than HANG_MS. Manifests are re-signed after each structural edit, so the body parser
 * behind the signature check is reached. Inputs are bounded (at most 64 KiB of text).
 */
import test from 'ava';
import fc from 'fast-check';
import { readFileSync, readdirSync } from 'node:fs';
import { loadManifest, type ManifestBody } from '../../verifier-vm/manifest.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { parseScenario } from '../../scenario/parse.ts';
import { PROTOCOL_VERSION, REQUEST_KINDS, validateRequest, validateVerdict, type VerifyRequest } from '../../shared/protocol.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';
import { byteMutationArb, checkProperty, isTypedError, mutateBytes, noThrowNoHang, scaledRuns } from '../helpers/fuzz.ts';

const keys = testKeyring();
const keyringResult = Keyring.fromData(keys.data);
if (!keyringResult.ok) throw new Error(keyringResult.error);
const keyring = keyringResult.value;
const utf8 = new TextDecoder('utf-8', { fatal: false });
const MAX_TEXT = 1 << 16;

// ------------------------------------------------------------------ structural mutation

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
/** An edit of a JSON-like tree: pick the n-th node (pre-order, modulo the node count) and replace, delete or double it. */
interface TreeEdit {
  readonly node: number;
  readonly op: 'replace' | 'delete' | 'duplicate';
  readonly value: unknown;
}

/** Plain objects only: typed arrays, maps, dates are leaves. */
function isPlainObject(v: unknown): v is Record<string, unknown> {
  if (typeof v !== 'object' || v === null) return false;
  const proto = Object.getPrototypeOf(v) as unknown;
  return proto === Object.prototype || proto === null;
}

function countNodes(v: unknown): number {
  if (Array.isArray(v)) return 1 + v.reduce((a: number, x) => a + countNodes(x), 0);
  if (isPlainObject(v)) return 1 + Object.values(v).reduce((a: number, x) => a + countNodes(x), 0);
  return 1;
}

function editTree<T>(root: T, edit: TreeEdit): T {
  let n = edit.node % countNodes(root);
  const visit = (v: unknown, set: (x: unknown) => void, del: () => void): boolean => {
    if (n-- === 0) {
      if (edit.op === 'delete') del();
      else if (edit.op === 'duplicate' && Array.isArray(v)) set([...v, ...v]);
      else set(edit.value);
      return true;
    }
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++)
        if (
          visit(
            v[i],
            (x) => (v[i] = x),
            () => v.splice(i, 1),
          )
        )
          return true;
    } else if (isPlainObject(v)) {
      const o = v;
      for (const k of Object.keys(o))
        if (
          visit(
            o[k],
            (x) => (o[k] = x),
            () => delete o[k],
          )
        )
          return true;
    }
    return false;
  };
  const box = { root: structuredClone(root) as unknown };
  visit(
    box.root,
    (x) => (box.root = x),
    () => (box.root = null),
  );
  return box.root as T;
}

const jsonValue = fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>;
const hexish = fc.oneof(fc.constantFrom('', '0', 'ffffffffffffffff', 'fffffffffffffffff', 'x', '-1', '0x10', 'FFFF'), fc.stringMatching(/^[0-9a-f]{1,18}$/));
const treeEditArb = (values: fc.Arbitrary<unknown>): fc.Arbitrary<TreeEdit> =>
  fc.record({
    node: fc.nat({ max: 400 }),
    op: fc.constantFrom('replace' as const, 'replace' as const, 'delete' as const, 'duplicate' as const),
    value: values,
  });

// ------------------------------------------------------------------ manifests

const manifestBody: ManifestBody = {
  kernel: 'linux-synthetic',
  vmlinuzSha256: 'ab'.repeat(32),
  sections: [
    { name: '.text', vaddr: 'ffffffff81000000', paddr: '1000000', size: 0x2000, sha256: 'cd'.repeat(32) },
    { name: '.rodata', vaddr: 'ffffffff82000000', paddr: '2000000', size: 0x1000, sha256: 'ef'.repeat(32) },
  ],
  symbols: { _stext: 'ffffffff81000000', _etext: 'ffffffff81002000', __init_begin: 'ffffffff83000000', __init_end: 'ffffffff83001000' },
  mcountSites: ['ffffffff81000010', 'ffffffff81000040'],
  jumpEntries: [{ site: 'ffffffff81000100', target: 'ffffffff81000200', key: 'ffffffff82000010', len: 2 }],
  exports: { printk: 'ffffffff81000300' },
  ftraceTrampolines: { ftrace_caller: 'ffffffff81000400', ftrace_regs_caller: 'ffffffff81000500' },
  fentry: 'ffffffff81000600',
} as ManifestBody;

test('manifests: a typed error or a valid manifest, for text damage and for re-signed structural edits', async (t) => {
  const good = loadManifest(signManifest(manifestBody, keys.vendor), keyring);
  t.true(good.ok, good.ok ? '' : good.error);
  const outcomes = { loaded: 0, refused: 0 };
  const prop = fc.property(
    fc.oneof(
      {
        weight: 2,
        arbitrary: fc
          .array(byteMutationArb, { minLength: 1, maxLength: 6 })
          .map((e) => utf8.decode(mutateBytes(new TextEncoder().encode(signManifest(manifestBody, keys.vendor)), e, MAX_TEXT))),
      },
      {
        weight: 6,
        arbitrary: fc
          .array(treeEditArb(fc.oneof(jsonValue, hexish)), { minLength: 1, maxLength: 4 })
          .map((edits) => signManifest(edits.reduce(editTree, manifestBody), keys.vendor)),
      },
      { weight: 1, arbitrary: jsonValue.map((body) => signManifest(body as unknown as ManifestBody, keys.vendor)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 2000 }) },
    ),
    (text) => {
      const r = noThrowNoHang('loadManifest', text.length, () => loadManifest(text, keyring));
      if (r.ok) outcomes.loaded++;
      else outcomes.refused++;
      return r.ok || isTypedError(r.error);
    },
  );
  await checkProperty(t, 'manifest', prop, scaledRuns(400));
  t.log(`loaded ${outcomes.loaded}, refused ${outcomes.refused}`);
});

// ------------------------------------------------------------------ scenarios

const scenarioSeeds = readdirSync(new URL('../../scenarios/', import.meta.url))
  .filter((f) => f.endsWith('.yaml'))
  .map((f) => readFileSync(new URL(`../../scenarios/${f}`, import.meta.url), 'utf8'));
/** YAML's classic denial of service: nested aliases that expand exponentially. */
const ALIAS_BOMB = [
  'a: &a ["x","x","x","x","x","x","x","x","x"]',
  ...Array.from({ length: 9 }, (_, i) => `${'bcdefghij'[i]}: &${'bcdefghij'[i]} [${Array(9).fill(`*${'abcdefghi'[i]}`).join(',')}]`),
  'name: bomb',
  'steps: *j',
].join('\n');
const yamlScalar = fc.oneof(
  fc.constantFrom(
    '',
    '~',
    'null',
    '-1',
    '0',
    '0x',
    '0xffffffffffffffffff',
    '1e400',
    '.nan',
    '!!binary AAAA',
    '&x 1',
    '*x',
    '{',
    '[',
    '"',
    "'",
    '|',
    '>',
    '? x',
    '- x',
    '<<: *x',
    'yes',
    'on',
    'x'.repeat(5000),
  ),
  fc.string({ maxLength: 40 }),
  fc.integer().map(String),
  fc.bigInt({ min: 0n, max: 1n << 70n }).map((b) => `0x${b.toString(16)}`),
);
const lineEdit = fc.record({ line: fc.nat({ max: 200 }), op: fc.constantFrom('delete', 'duplicate', 'swap', 'scalar', 'indent', 'dedent'), value: yamlScalar });
function editLines(text: string, edits: ReadonlyArray<{ line: number; op: string; value: string }>): string {
  const lines = text.split('\n');
  for (const e of edits) {
    const i = e.line % Math.max(lines.length, 1);
    const l = lines[i] ?? '';
    if (e.op === 'delete') lines.splice(i, 1);
    else if (e.op === 'duplicate') lines.splice(i, 0, l);
    else if (e.op === 'swap') lines.splice(i, 2, lines[i + 1] ?? '', l);
    else if (e.op === 'indent') lines[i] = `  ${l}`;
    else if (e.op === 'dedent') lines[i] = l.replace(/^\s+/, '');
    else lines[i] = l.includes(':') ? `${l.slice(0, l.lastIndexOf(':') + 1)} ${e.value}` : `${l} ${e.value}`;
  }
  return lines.join('\n').slice(0, MAX_TEXT);
}

test('scenario files: parseScenario gives line-numbered problems or a scenario, alias bombs included', async (t) => {
  const outcomes = { parsed: 0, refused: 0 };
  const prop = fc.property(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.tuple(fc.constantFrom(...scenarioSeeds), fc.array(lineEdit, { minLength: 1, maxLength: 6 })).map(([s, e]) => editLines(s, e)),
      },
      {
        weight: 2,
        arbitrary: fc
          .tuple(fc.constantFrom(...scenarioSeeds), fc.array(byteMutationArb, { minLength: 1, maxLength: 6 }))
          .map(([s, e]) => utf8.decode(mutateBytes(new TextEncoder().encode(s), e, MAX_TEXT))),
      },
      { weight: 1, arbitrary: fc.tuple(fc.constant(ALIAS_BOMB), fc.array(lineEdit, { maxLength: 3 })).map(([s, e]) => editLines(s, e)) },
      { weight: 1, arbitrary: fc.string({ maxLength: 2000 }) },
    ),
    (text) => {
      const r = noThrowNoHang('parseScenario', text.length, () => parseScenario(text, { path: '/nonexistent/fuzz/scenario.yaml', display: 'fuzz.yaml' }));
      if (r.ok) {
        outcomes.parsed++;
        return true;
      }
      outcomes.refused++;
      return r.error.problems.length > 0 && r.error.problems.every((p) => Number.isInteger(p.line) && p.line >= 0 && p.message.length > 0);
    },
  );
  await checkProperty(t, 'scenario', prop, scaledRuns(1500));
  t.log(`${scenarioSeeds.length} seeds; parsed ${outcomes.parsed}, refused ${outcomes.refused}`);
});

// ------------------------------------------------------------------ protocol messages

const bytes = (n: number) => new Uint8Array(n).fill(0x90);
const requestSeeds: VerifyRequest[] = [
  { v: PROTOCOL_VERSION, id: 1, vm: 'vm0', kind: 'kernel-text', sections: [{ name: '.text', addr: 0xffff_ffff_8100_0000n, bytes: bytes(16) }] },
  {
    v: PROTOCOL_VERSION,
    id: 2,
    vm: 'vm0',
    kind: 'module-load',
    name: 'm',
    image: bytes(32),
    sections: [{ shndx: 1, addr: 0xffff_ffff_c000_0000n, bytes: bytes(8), size: 8 }],
    percpu: 0x1000n,
  },
  { v: PROTOCOL_VERSION, id: 3, vm: 'vm0', kind: 'module-unload', name: 'm' },
  {
    v: PROTOCOL_VERSION,
    id: 4,
    vm: 'vm0',
    kind: 'text-patch',
    items: [{ kind: 'ftrace', site: 0xffff_ffff_8100_0010n, oldBytes: bytes(5), newBytes: bytes(5), currentBytes: bytes(5) }],
  },
  {
    v: PROTOCOL_VERSION,
    id: 5,
    vm: 'vm0',
    kind: 'set-memory',
    ranges: [{ addr: 0xffff_c900_0000_0000n, frames: [1, 2], current: [3, 3], requested: 1, pageHashes: ['a', 'b'] }],
  },
  {
    v: PROTOCOL_VERSION,
    id: 6,
    vm: 'vm0',
    kind: 'code-load',
    what: 'bpf-jit',
    name: 'j',
    addr: 0xffff_c900_0000_0000n,
    image: bytes(64),
    signature: bytes(64),
    keyId: '00'.repeat(8),
  },
];
const hostileValue = fc.oneof(
  fc.anything({
    maxDepth: 2,
    withBigInt: true,
    withTypedArray: true,
    withNullPrototype: true,
    withMap: true,
    withSet: true,
    withDate: true,
    withSparseArray: true,
  }),
  fc.constantFrom(
    -1,
    1.5,
    Number.NaN,
    Infinity,
    2 ** 53,
    -(2n ** 64n),
    2n ** 64n,
    '',
    'x'.repeat(5000),
    [],
    {},
    null,
    undefined,
    new Uint8Array(0),
    'ftrace',
    'module-load',
  ),
);

test('protocol messages: validateRequest and validateVerdict answer every value, and only accept the right shapes', async (t) => {
  const outcomes = { accepted: 0, refused: 0 };
  const prop = fc.property(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc
          .tuple(fc.constantFrom(...requestSeeds), fc.array(treeEditArb(hostileValue), { minLength: 1, maxLength: 3 }))
          .map(([s, e]) => e.reduce(editTree, s) as unknown),
      },
      { weight: 2, arbitrary: hostileValue },
      {
        weight: 1,
        arbitrary: fc.record(
          { v: fc.constant(PROTOCOL_VERSION), id: fc.nat(), vm: fc.string(), kind: fc.constantFrom(...REQUEST_KINDS) },
          { requiredKeys: ['v', 'kind'] },
        ),
      },
    ),
    (msg) => {
      const r = noThrowNoHang('validateRequest', 0, () => validateRequest(msg));
      noThrowNoHang('validateVerdict', 0, () => validateVerdict(msg));
      if (!r.ok) {
        outcomes.refused++;
        return typeof r.error === 'string' && r.error.length > 0 && Number.isSafeInteger(r.id);
      }
      outcomes.accepted++;
      // An accepted request has the declared shape: a known kind, and consistent lengths.
      const q = r.request;
      if (!(REQUEST_KINDS as readonly string[]).includes(q.kind) || q.v !== PROTOCOL_VERSION) return false;
      if (q.kind === 'text-patch')
        return q.items.every((i) => i.oldBytes.length === i.newBytes.length && i.oldBytes.length === i.currentBytes.length && i.oldBytes.length > 0);
      if (q.kind === 'set-memory') return q.ranges.every((rg) => rg.frames.length === rg.pageHashes.length && rg.frames.length === rg.current.length);
      return true;
    },
  );
  await checkProperty(t, 'protocol', prop, scaledRuns(4000));
  t.log(`accepted ${outcomes.accepted}, refused ${outcomes.refused}`);
});
