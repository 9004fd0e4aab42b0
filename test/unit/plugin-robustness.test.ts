/**
 * Property tests over the patch, memory, code and boot plugins: for any well-shaped request
 * (what the worker lets through validateRequest) each plugin answers without throwing, with
 * a decision per item, the same answer twice (determinism), and commit does not throw.
 */
import test from 'ava';
import fc from 'fast-check';
import { checkProperty, scaledRuns } from '../helpers/fuzz.ts';
import { PROTOCOL_VERSION, validateRequest, type PatchItem, type VerifyRequest } from '../../shared/protocol.ts';
import type { PluginContext, VerifierPlugin } from '../../verifier-vm/plugin-api.ts';
import { codeLoadPlugin } from '../../verifier-vm/plugins/code-load.ts';
import { ftracePlugin } from '../../verifier-vm/plugins/ftrace.ts';
import { jumpLabelPlugin } from '../../verifier-vm/plugins/jump-label.ts';
import { kernelTextPlugin } from '../../verifier-vm/plugins/kernel-text.ts';
import { kprobePlugin } from '../../verifier-vm/plugins/kprobe.ts';
import { setMemoryPlugin } from '../../verifier-vm/plugins/set-memory.ts';
import { staticCallPlugin } from '../../verifier-vm/plugins/static-call.ts';
import { K, MOD, SC, context, freshVm, syntheticModule } from './plugin-synthetic.ts';

const PLUGINS = [ftracePlugin, jumpLabelPlugin, staticCallPlugin, kprobePlugin, setMemoryPlugin, codeLoadPlugin, kernelTextPlugin] as VerifierPlugin[];
const DECISIONS = new Set(['allow', 'deny', 'abstain']);

/** Addresses near the interesting ones, plus anything. */
const addr = fc.oneof(
  fc
    .constantFrom(
      K.mcount[0]!,
      K.jump2.site,
      K.jump5.site,
      SC.keyA.calls[0]!,
      SC.keyA.tail,
      SC.keyA.trampoline,
      K.func,
      K.initMcount,
      MOD.mcount,
      MOD.jump2.site,
      MOD.text,
    )
    .chain((a) => fc.integer({ min: -6, max: 6 }).map((d) => a + BigInt(d))),
  fc.bigInt(0n, (1n << 64n) - 1n),
);

const patchItem: fc.Arbitrary<PatchItem> = fc
  .tuple(fc.constantFrom('ftrace', 'jump-label', 'static-call', 'kprobe') as fc.Arbitrary<PatchItem['kind']>, addr, fc.integer({ min: 1, max: 16 }))
  .chain(([kind, site, len]) =>
    fc
      .tuple(
        fc.uint8Array({ minLength: len, maxLength: len }),
        fc.uint8Array({ minLength: len, maxLength: len }),
        fc.boolean(),
        fc.uint8Array({ minLength: len, maxLength: len }),
      )
      .map(([o, n, same, c]): PatchItem => ({ kind, site, oldBytes: o, newBytes: n, currentBytes: same ? Uint8Array.from(o) : c })),
  );

const hash = fc.oneof(fc.constant('00'.repeat(32)), fc.string({ maxLength: 70 }));
const range = fc.integer({ min: 0, max: 4 }).chain((n) =>
  fc.record({
    addr: fc.oneof(fc.constant(MOD.text), addr),
    frames: fc.array(fc.nat(1 << 20), { minLength: n, maxLength: n }),
    current: fc.array(fc.nat(63), { minLength: n, maxLength: n }),
    requested: fc.nat(63),
    pageHashes: fc.array(hash, { minLength: n, maxLength: n }),
  }),
);

const base = { v: PROTOCOL_VERSION, id: 1, vm: 'vm0' };
const request: fc.Arbitrary<VerifyRequest> = fc.oneof(
  fc.array(patchItem, { maxLength: 6 }).map((items) => ({ ...base, kind: 'text-patch' as const, items })),
  fc.array(range, { maxLength: 3 }).map((ranges) => ({ ...base, kind: 'set-memory' as const, ranges })),
  fc
    .record({
      what: fc.constantFrom('bpf-jit' as const, 'trampoline' as const),
      name: fc.string({ maxLength: 8 }),
      addr,
      image: fc.uint8Array({ maxLength: 300 }),
      signature: fc.uint8Array({ maxLength: 70 }),
      keyId: fc.string({ maxLength: 20 }),
    })
    .map((r) => ({ ...base, kind: 'code-load' as const, ...r })),
  fc
    .array(fc.record({ name: fc.constantFrom('.text', '.rodata', '.init.text', '.bss'), addr, bytes: fc.uint8Array({ maxLength: 64 }) }), { maxLength: 4 })
    .map((sections) => ({ ...base, kind: 'kernel-text' as const, sections })),
);

const config = fc.oneof(
  fc.constant({}),
  fc.constant({
    allow: [{ start: K.text.toString(16), end: (K.text + 0x10000n).toString(16) }],
    deny: [{ start: '0x' + K.func.toString(16), end: (K.func + 4n).toString(16) }],
  }),
  fc.dictionary(fc.constantFrom('allow', 'deny'), fc.anything()),
);

function ctxWith(cfg: Record<string, unknown>, withManifest: boolean): PluginContext {
  const vm = freshVm();
  vm.modules.set(MOD.name, syntheticModule());
  return context(withManifest ? { vm, config: cfg } : { vm, config: cfg, manifest: undefined });
}

test('property: every plugin answers any well-shaped request without throwing, deterministically', async (t) => {
  await checkProperty(
    t,
    'property: every plugin answers any well-shaped request without throwing, deterministically',
    fc.property(request, config, fc.boolean(), fc.boolean(), (req, cfg, withManifest, ok) => {
      if (!validateRequest(req).ok) return true; // the worker would refuse it before any plugin
      for (const p of PLUGINS) {
        if (!(p.kinds as readonly string[]).includes(req.kind)) continue;
        const ctx = ctxWith(cfg as Record<string, unknown>, withManifest);
        const a = p.decide(req as never, ctx);
        const b = p.decide(req as never, ctx);
        if (
          JSON.stringify(a, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) !==
          JSON.stringify(b, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
        )
          return false;
        if (!DECISIONS.has(a.decision)) return false;
        if (a.decision === 'deny' && a.reason.length === 0) return false;
        const n = req.kind === 'text-patch' ? req.items.length : req.kind === 'set-memory' ? req.ranges.length : undefined;
        if (n !== undefined && a.items?.length !== n) return false;
        if (a.items?.some((i) => !DECISIONS.has(i.decision) || (i.decision === 'deny' && i.reason.length === 0))) return false;
        p.commit?.(req as never, ok, ctx);
      }
      return true;
    }),
    scaledRuns(400),
  );
});
