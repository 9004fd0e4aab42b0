/**
 * One plugin engine decides a text-patch batch whether it comes as an object request (comlink,
 * `Verifier.verify`) or in record form (the verification ring, `Verifier.verifyPatchRecords`).
 * What a user relies on: a plugin, a replay (`heki replay` decides on the record path) and the
 * core (which falls back to comlink) see the same verdict, the same per-item verdicts and
 * reasons, the same deciding plugins, the same commit calls and the same state afterwards,
 * whichever way a batch travelled. Property-style over random plugins (answers per item or
 * whole, with and without a record fast path, by text or by template, thrown, malformed or as
 * promises) and random items, with and without the built-in plugins. Fixed seed
 * (test/helpers/fuzz.ts).
 */
import test from 'ava';
import fc from 'fast-check';
import { PATCH_KIND, type PatchKindName } from '../../shared/heki-descriptors.ts';
import type { PatchItem, Verdict } from '../../shared/protocol.ts';
import { PATCH_KIND_NAMES, PatchRecords } from '../../shared/ring/patch-records.ts';
import { expandItems } from '../../shared/ring/verdict-codec.ts';
import { ItemDecisions, type AnyPlugin, type Decision, type PluginResult, type RecordBatch } from '../../verifier-vm/plugin-api.ts';
import { NOP2, NOP5, SYNTHETIC, ftraceCall, jump5, patchItem, pluginTestVerifier } from '../../tools/plugin-testing.ts';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';

const KINDS = Object.keys(PATCH_KIND) as PatchKindName[];
const DECISIONS: readonly Decision[] = ['allow', 'deny', 'abstain'];

/** What a generated plugin does. */
interface Spec {
  readonly claims: boolean;
  readonly overall: Decision;
  readonly overallReason: string;
  /** Per-item decisions by (site's low byte + kind code) modulo its length; none: no `items`. */
  readonly table: readonly Decision[] | undefined;
  readonly fast: 'none' | 'records' | 'undefined';
  readonly delivery: 'return' | 'promise' | 'throw' | 'malformed';
  readonly commit: 'none' | 'commit' | 'both';
}

const hex = (a: bigint): string => `0x${a.toString(16)}`;

/** The plugin of `spec`, logging its commit calls into `log`. */
function plugin(name: string, spec: Spec, log: string[]): AnyPlugin {
  const pick = (lowByte: number, kindCode: number): Decision => spec.table![(lowByte + kindCode) % spec.table!.length]!;
  const deliver = (r: unknown): never => {
    if (spec.delivery === 'throw') throw new Error(`boom in ${name}`);
    if (spec.delivery === 'malformed') return { decision: 'perhaps', reason: 1 } as never;
    return (spec.delivery === 'promise' ? Promise.resolve(r) : r) as never;
  };
  const p: AnyPlugin = {
    name,
    description: 'generated',
    kinds: spec.claims ? ['text-patch'] : ['module-unload'],
    decide(request) {
      const items = (request as { items: readonly PatchItem[] }).items;
      const result: PluginResult = {
        decision: spec.overall,
        reason: spec.overallReason,
        ...(spec.table
          ? {
              items: items.map((it) => {
                const d = pick(Number(it.site & 0xffn), PATCH_KIND[it.kind]);
                return {
                  decision: d,
                  reason: d === 'allow' ? `site ${hex(it.site)} fine by ${name}` : d === 'deny' ? `no ${it.kind} at ${hex(it.site)}` : 'not mine',
                };
              }),
            }
          : {}),
      };
      return deliver(result);
    },
  };
  if (spec.fast !== 'none') {
    p.decideRecords = (batch: RecordBatch) => {
      if (spec.fast === 'undefined') return undefined;
      const r = batch.records;
      let items: ItemDecisions | undefined;
      if (spec.table) {
        items = new ItemDecisions(r.count);
        for (let i = 0; i < r.count; i++) {
          const d = pick(r.siteLo(i) & 0xff, r.kindCode(i));
          if (d === 'allow') items.setTemplate(i, 'allow', items.templateId('site ', ` fine by ${name}`));
          // Denials by text and, at odd sites, by template: the same reason either way.
          else if (d === 'deny' && (r.siteLo(i) & 1) === 0) items.set(i, 'deny', `no ${PATCH_KIND_NAMES[r.kindCode(i)]} at ${r.siteHex(i)}`);
          else if (d === 'deny') items.setTemplate(i, 'deny', items.templateId(`no ${PATCH_KIND_NAMES[r.kindCode(i)]} at `, ''));
        }
      }
      return deliver({ decision: spec.overall, reason: spec.overallReason, ...(items ? { items } : {}) });
    };
  }
  if (spec.commit !== 'none') p.commit = (request, ok) => void log.push(`${name} commit ${ok} ${(request as { items?: unknown[] }).items?.length}`);
  if (spec.commit === 'both') p.commitRecords = (batch, ok) => void log.push(`${name} commit ${ok} ${batch.records.count}`);
  return p;
}

const spec: fc.Arbitrary<Spec> = fc.record({
  // Mostly claims text-patch; a batch none of the plugins claims is denied by default.
  claims: fc.constantFrom(true, true, true, false),
  overall: fc.constantFrom(...DECISIONS),
  overallReason: fc.constantFrom('whole batch', '', 'reason with ünïcode'),
  table: fc.option(fc.array(fc.constantFrom(...DECISIONS), { minLength: 1, maxLength: 4 }), { nil: undefined }),
  fast: fc.constantFrom('none', 'records', 'undefined'),
  delivery: fc.constantFrom('return', 'return', 'return', 'promise', 'throw', 'malformed'),
  commit: fc.constantFrom('none', 'commit', 'both'),
});

/** An item at one of the synthetic kernel's sites (or a random text address), in one of the shapes the guest sends. */
const item: fc.Arbitrary<PatchItem> = fc
  .record({
    site: fc.oneof(
      fc.constantFrom(...SYNTHETIC.mcountSites, SYNTHETIC.jump2.site, SYNTHETIC.jump5.site, SYNTHETIC.printk),
      fc.nat(0xfff0).map((o) => SYNTHETIC.text + BigInt(o)),
    ),
    kind: fc.constantFrom(...KINDS),
    shape: fc.constantFrom('ftrace-on', 'jump5-on', 'jump2-on', 'int3', 'lock', 'raw'),
    lie: fc.boolean(),
  })
  .map(({ site, kind, shape, lie }) => {
    const [oldBytes, newBytes] =
      shape === 'ftrace-on'
        ? [NOP5, ftraceCall(site, SYNTHETIC.ftraceCaller)]
        : shape === 'jump5-on'
          ? [NOP5, jump5(site, SYNTHETIC.jump5.target)]
          : shape === 'jump2-on'
            ? [NOP2, Uint8Array.of(0xeb, Number(SYNTHETIC.jump2.target - site - 2n) & 0xff)]
            : shape === 'int3'
              ? [Uint8Array.of(0x55), Uint8Array.of(0xcc)]
              : shape === 'lock'
                ? [Uint8Array.of(0x3e), Uint8Array.of(0xf0)]
                : [Uint8Array.of(1, 2, 3), Uint8Array.of(4, 5, 6)];
    // The guest's belief differs from memory: the core found other bytes.
    const current = lie ? oldBytes.map((b) => b ^ 0xff) : oldBytes;
    return patchItem(kind, site, oldBytes, newBytes, current);
  });

/** Everything about one decision a user can see: the verdict, the commit calls, the state left. */
interface Seen {
  readonly verdict: Pick<Verdict, 'ok' | 'reason' | 'plugins' | 'items' | 'grants'>;
  readonly commits: readonly string[];
  readonly state: unknown;
}

/** `v` as text, with bigints, Maps and Sets spelt out, for comparing plugin state. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x instanceof Map || x instanceof Set ? [...x] : x));
}

/** Decides `items` in one form on a fresh verifier with the built-ins (or not) and the plugins of `specs`. */
async function decide(form: 'object' | 'records', specs: readonly Spec[], builtins: boolean, items: readonly PatchItem[], async: boolean): Promise<Seen> {
  const log: string[] = [];
  const v = pluginTestVerifier({
    builtins,
    plugins: specs.map((s, i) => plugin(`gen-${i}`, s, log)),
    ...(builtins ? { pluginConfig: { kprobe: { allow: [{ start: hex(SYNTHETIC.text), end: hex(SYNTHETIC.text + 0x10000n) }] } } } : {}),
  });
  const opts = async ? { async: true as const } : undefined;
  let verdict: Seen['verdict'];
  if (form === 'object') {
    const {
      ok,
      reason,
      plugins,
      items: its,
      grants,
    } = await (opts
      ? v.engine.verify({ v: 1, id: 1, vm: 'vm0', kind: 'text-patch', items }, opts)
      : v.engine.verify({ v: 1, id: 1, vm: 'vm0', kind: 'text-patch', items }));
    verdict = { ok, reason, plugins: [...plugins], ...(its ? { items: its } : {}), ...(grants ? { grants } : {}) };
  } else {
    const records = PatchRecords.fromItems(items);
    if (typeof records === 'string') throw new Error(records);
    const out = await (opts ? v.engine.verifyPatchRecords(1, 'vm0', records, opts) : v.engine.verifyPatchRecords(1, 'vm0', records));
    const p = out.verdict;
    verdict = {
      ok: p.ok,
      reason: p.reason,
      plugins: [...p.plugins],
      ...(p.items ? { items: expandItems(p.items, (i) => records.siteHex(i)) } : {}),
      ...(out.grants ? { grants: out.grants } : {}),
    };
  }
  return { verdict, commits: log, state: v.state().pluginState };
}

test('property: the same plugins on the same items decide alike as an object request and as a record batch', async (t) => {
  const property = fc.asyncProperty(
    fc.array(spec, { maxLength: 4 }),
    fc.boolean(),
    fc.array(item, { maxLength: 6 }),
    fc.boolean(),
    async (specs, builtins, items, async) => {
      const object = await decide('object', specs, builtins, items, async);
      const records = await decide('records', specs, builtins, items, async);
      const same = (a: unknown, b: unknown): boolean => canonical(a) === canonical(b);
      if (!same(object.verdict, records.verdict))
        throw new Error(`verdicts differ:\nobject  ${JSON.stringify(object.verdict)}\nrecords ${JSON.stringify(records.verdict)}`);
      if (!same(object.commits, records.commits))
        throw new Error(`commit calls differ: ${JSON.stringify(object.commits)} vs ${JSON.stringify(records.commits)}`);
      if (!same(object.state, records.state)) throw new Error('plugin state after the batch differs');
    },
  );
  await checkProperty(t, 'object and record forms', property, scaledRuns(400));
});

test('both forms give the same pinned verdicts: an allow by template beside a deny by text, default deny, a whole-batch deny', async (t) => {
  // gen-0 allows every item (by template on the record path); gen-1 denies the kprobe item (low byte 0 + kind 3).
  const items = [
    patchItem('ftrace', SYNTHETIC.mcountSites[0], NOP5, ftraceCall(SYNTHETIC.mcountSites[0], SYNTHETIC.ftraceCaller)),
    patchItem('kprobe', SYNTHETIC.printk, Uint8Array.of(0x55), Uint8Array.of(0xcc)),
  ];
  const allowsFtrace: Spec = { claims: true, overall: 'abstain', overallReason: '', table: ['allow'], fast: 'records', delivery: 'return', commit: 'both' };
  for (const form of ['object', 'records'] as const) {
    const seen = await decide(form, [allowsFtrace, { ...allowsFtrace, table: ['abstain', 'abstain', 'abstain', 'deny'] }], false, items, false);
    t.false(seen.verdict.ok, form);
    t.deepEqual(seen.verdict.plugins, ['gen-0', 'gen-1'], form);
    t.deepEqual(
      seen.verdict.items,
      [
        { ok: true, reason: `gen-0: site ${hex(SYNTHETIC.mcountSites[0])} fine by gen-0` },
        { ok: false, reason: `gen-1: no kprobe at ${hex(SYNTHETIC.printk)}` },
      ],
      form,
    );
    t.is(seen.verdict.reason, `1 of 2 items denied; first: gen-1: no kprobe at ${hex(SYNTHETIC.printk)}`, form);
    t.deepEqual(seen.commits, ['gen-0 commit false 2', 'gen-1 commit false 2'], form);
    const none = await decide(form, [{ ...allowsFtrace, table: ['abstain'] }], false, items, false);
    t.is(none.verdict.items![1]!.reason, 'no plugin allowed this text-patch item (default deny)', form);
    const whole = await decide(form, [{ ...allowsFtrace, overall: 'deny', overallReason: 'not today', table: undefined }], false, items, false);
    t.is(whole.verdict.reason, 'gen-0: not today', form);
    t.deepEqual(
      whole.verdict.items!.map((i) => i.reason),
      ['gen-0: not today', 'gen-0: not today'],
      form,
    );
  }
});
