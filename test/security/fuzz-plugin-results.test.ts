/**
 * Property-based fuzzing of what a plugin may return (issue 15, class 5): any value at all,
 * near-misses of a result (a decision that is not one of the three, reasons that are not
 * text, items of the wrong count or shape, malformed grants), returned directly, as a
 * resolved or rejected promise, or thrown. The attack: a plugin's answer crashes the verifier
 * or passes as an abstention or an allowance. The expected stop: the engine never throws and
 * always gives a well-formed verdict, on the protocol path and on the record path; whatever
 * is not a well-formed result is a denial naming the plugin; a well-formed denial denies.
 * Fixed seed (test/helpers/fuzz.ts).
 */
import test from 'ava';
import fc from 'fast-check';
import { validateVerdict, type Verdict } from '../../shared/protocol.ts';
import { PatchRecords } from '../../shared/ring/patch-records.ts';
import { NOP5, SYNTHETIC, ftraceCall, patchItem, pluginTestVerifier } from '../../tools/plugin-testing.ts';
import type { AnyPlugin } from '../../verifier-vm/plugin-api.ts';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';

const site = SYNTHETIC.mcountSites[0]!;
const item = patchItem('ftrace', site, NOP5, ftraceCall(site, SYNTHETIC.ftraceCaller));
const DECISIONS = ['allow', 'deny', 'abstain'];

/** The test's own statement of a well-formed result for a request of `n` items (the oracle). */
function wellFormed(raw: unknown, n: number): boolean {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return false;
  const r = raw as Record<string, unknown>;
  if (!DECISIONS.includes(r['decision'] as string) || typeof r['reason'] !== 'string') return false;
  const items = r['items'];
  if (items !== undefined) {
    if (!Array.isArray(items) || items.length !== n) return false;
    for (const i of items as unknown[]) {
      if (typeof i !== 'object' || i === null) return false;
      if (!DECISIONS.includes((i as Record<string, unknown>)['decision'] as string) || typeof (i as Record<string, unknown>)['reason'] !== 'string')
        return false;
    }
  }
  const grants = r['grants'];
  if (grants !== undefined) {
    if (!Array.isArray(grants)) return false;
    for (const g of grants as unknown[]) {
      if (typeof g !== 'object' || g === null) return false;
      const { shndx, permissions } = g as Record<string, unknown>;
      if (!Number.isInteger(shndx) || (shndx as number) < 0 || (shndx as number) > 0xffff) return false;
      if (!Number.isInteger(permissions) || (permissions as number) < 0 || (permissions as number) > 0xff) return false;
    }
  }
  return true;
}

const decision = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...DECISIONS) }, { weight: 1, arbitrary: fc.anything() });
const reason = fc.oneof({ weight: 4, arbitrary: fc.string({ maxLength: 40 }) }, { weight: 1, arbitrary: fc.anything() });
const itemAnswer = fc.oneof({ weight: 4, arbitrary: fc.record({ decision, reason }) }, { weight: 1, arbitrary: fc.anything() });
const grant = fc.record({ shndx: fc.oneof(fc.nat(0x1_0010), fc.anything()), permissions: fc.oneof(fc.nat(0x110), fc.anything()) });
const result = (n: number): fc.Arbitrary<unknown> =>
  fc.oneof(
    { weight: 1, arbitrary: fc.anything() },
    {
      weight: 4,
      arbitrary: fc.record(
        {
          decision,
          reason,
          items: fc.oneof(fc.array(itemAnswer, { minLength: n, maxLength: n }), fc.array(itemAnswer, { maxLength: 4 }), fc.anything()),
          grants: fc.oneof(fc.array(grant, { maxLength: 3 }), fc.anything()),
        },
        { requiredKeys: ['decision', 'reason'] },
      ),
    },
  );
const how = fc.constantFrom('return', 'resolve', 'reject', 'throw');

/** The plugin answering `raw` the way `delivery` says. */
function fuzzPlugin(raw: unknown, delivery: string): AnyPlugin {
  return {
    name: 'fuzz',
    description: 'answers what the fuzzer drew',
    kinds: ['text-patch', 'module-unload'],
    decide() {
      if (delivery === 'throw') throw raw;
      if (delivery === 'resolve') return Promise.resolve(raw) as never;
      if (delivery === 'reject') return Promise.reject(raw) as never;
      return raw as never;
    },
  };
}

/** Checks one verdict against the properties; a string names the broken one. */
function broken(v: Verdict | undefined, raw: unknown, delivery: string, n: number, protocol: boolean): string | undefined {
  if (!v) return 'no verdict';
  if (protocol && !validateVerdict(v).ok) return `not a well-formed verdict: ${JSON.stringify(v)}`;
  if (typeof v.ok !== 'boolean' || typeof v.reason !== 'string') return 'verdict without ok or reason';
  const garbage = delivery === 'throw' || delivery === 'reject' || !wellFormed(raw, n);
  if (garbage && (v.ok || !v.reason.includes('plugin fuzz'))) return `garbage was not a denial naming the plugin: ${v.reason}`;
  if (!garbage && (raw as { decision: string }).decision === 'deny' && v.ok) return 'a well-formed denial was allowed';
  return undefined;
}

test('property: any plugin answer gives a verdict, and garbage is a denial naming the plugin, on both paths', async (t) => {
  const property = fc.asyncProperty(
    fc.nat(3).chain((n) => fc.tuple(fc.constant(n), result(n), how)),
    async ([n, raw, delivery]) => {
      const v = pluginTestVerifier({ builtins: false, plugins: [fuzzPlugin(raw, delivery)] });
      const message =
        n === 0
          ? { v: 1, id: 1, vm: 'vm0', kind: 'module-unload', name: 'm' }
          : { v: 1, id: 1, vm: 'vm0', kind: 'text-patch', items: Array.from({ length: n }, () => item) };
      const object = await v.engine.verify(message, { async: true });
      const problem = broken(object, raw, delivery, n, true);
      if (problem) throw new Error(`protocol path, ${n} items, ${delivery}: ${problem}`);
      if (n > 0) {
        const records = PatchRecords.fromItems(message.items as never);
        if (typeof records === 'string') throw new Error(records);
        const packed = await v.engine.verifyPatchRecords(2, 'vm0', records, { async: true });
        const p = broken({ ...packed.verdict, v: 1 } as unknown as Verdict, raw, delivery, n, false);
        if (p) throw new Error(`record path, ${n} items, ${delivery}: ${p}`);
        if (packed.verdict.ok !== object.ok) throw new Error('the two paths disagree');
      }
      // The synchronous engine never throws either, whatever the answer.
      if (delivery === 'return' || delivery === 'throw') {
        const sync = v.engine.verify(message);
        if (typeof sync.ok !== 'boolean') throw new Error('the synchronous verify gave no verdict');
      }
    },
  );
  await checkProperty(t, 'plugin results', property, scaledRuns(600));
});
