/**
 * The verifier link over both transports, comlink and the verification ring, with the same
 * behavioural tests: allowed and denied verdicts with per-item reasons, the same verdicts on
 * both, a malformed record denied with the problem named, crash, hang, garbage and wrong id
 * failing closed with a restart, one answer per request, and backpressure. Real worker
 * threads, a synthetic signed manifest (test/unit/plugin-synthetic.ts).
 */
import test from 'ava';
import { VerifierLink, type VerifierLinkOptions } from '../../hypervisor/verifier-link/verifier-link.ts';
import { NOP5, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import { VERIFIER_UNAVAILABLE, isRetryable, type PatchItem, type Verdict } from '../../shared/protocol.ts';
import { PR, PatchRecords } from '../../shared/ring/index.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { K, syntheticBody } from '../unit/plugin-synthetic.ts';
import { testKeyring } from '../helpers/verifier-setup.ts';

const keys = testKeyring();
const manifest = signManifest(syntheticBody(), keys.vendor);
const TRANSPORTS = ['comlink', 'ring'] as const;

async function startLink(transport: (typeof TRANSPORTS)[number], extra: Partial<VerifierLinkOptions> = {}) {
  return VerifierLink.start({ init: { keyring: keys.data, manifest, faultInjection: true }, transport, ...extra });
}

/** ftrace on at synthetic site `site` (allowed at K.mcount sites). */
const enable = (site: bigint): PatchItem => ({
  kind: 'ftrace',
  site,
  oldBytes: Uint8Array.from(NOP5),
  newBytes: encodeCall32(site, K.ftraceCaller),
  currentBytes: Uint8Array.from(NOP5),
});
const allowed = enable(K.mcount[0]);
const denied = enable(K.mcount[0] + 1n);
const patch = (items: PatchItem[]) => ({ kind: 'text-patch' as const, vm: 'vm0', items });

/** A verdict as plain data (its items read), for comparing. */
const plain = (v: Verdict) => ({ ...v, ...(v.items ? { items: v.items.map((i) => ({ ...i })) } : {}), id: 0 });

for (const transport of TRANSPORTS) {
  test(`${transport}: allowed and denied items, with per-item reasons and the plugin named`, async (t) => {
    const link = await startLink(transport);
    t.teardown(() => link.dispose());
    const ok = await link.verify(patch([allowed]));
    t.true(ok.ok, ok.reason);
    t.is(ok.reason, 'all 1 items allowed');
    t.deepEqual(ok.plugins, ['ftrace']);
    t.deepEqual(ok.items, [{ ok: true, reason: 'ftrace: ftrace site 0xffffffff81000100 (kernel) -> call ftrace_caller (0xffffffff81001000)' }]);
    const mixed = await link.verify(patch([allowed, denied]));
    t.false(mixed.ok);
    t.is(
      mixed.reason,
      '1 of 2 items denied; first: ftrace: 0xffffffff81000101 is not an ftrace site (no __mcount_loc entry of the kernel or a verified module)',
    );
    t.deepEqual(
      mixed.items?.map((i) => i.ok),
      [true, false],
    );
    const unload = await link.verify({ kind: 'module-unload', vm: 'vm0', name: 'nope' });
    t.false(unload.ok);
    t.regex(unload.reason, /^module-end-state: module nope is not loaded/);
    t.is(link.stats.viaRing, transport === 'ring' ? 3 : 0, 'the ring carries text patches and unloads');
  });

  test(`${transport}: a malformed record is denied, naming the problem`, async (t) => {
    const link = await startLink(transport);
    t.teardown(() => link.dispose());
    const records = PatchRecords.fromItems([allowed]) as PatchRecords;
    records.bytes[PR.KIND] = 9;
    const v = await link.verifyPatches({ vm: 'vm0', records });
    t.false(v.ok);
    t.is(
      v.reason,
      transport === 'ring'
        ? 'malformed request: record 0: unknown patch kind code 9'
        : 'malformed request: request.items[0].kind must be one of ftrace, jump-label, static-call, kprobe, smp-lock',
    );
    t.true((await link.verify(patch([allowed]))).ok, 'the verifier still serves');
    t.is(link.stats.restarts, 0, "a malformed request is the core's fault, not the verifier's");
  });

  for (const fault of ['crash', 'garbage', 'wrong-id'] as const) {
    test(`${transport}: an injected ${fault} fails closed, restarts, and the next request is served`, async (t) => {
      const link = await startLink(transport);
      t.teardown(() => link.dispose());
      t.true(await link.injectFault(fault));
      const v = await link.verify(patch([allowed]));
      t.false(v.ok);
      t.true(v.reason.startsWith(VERIFIER_UNAVAILABLE), v.reason);
      const next = await link.verify(patch([allowed]));
      t.true(next.ok, next.reason);
      t.is(link.stats.restarts, 1);
      t.is(link.stats.failClosed, 1);
    });
  }

  test(`${transport}: a hang times out; every request in flight gets exactly one fail-closed answer`, async (t) => {
    const link = await startLink(transport, { timeoutMs: 400 });
    t.teardown(() => link.dispose());
    t.true(await link.injectFault('hang'));
    const answers = await Promise.all(Array.from({ length: 6 }, () => link.verify(patch([allowed]))));
    t.is(answers.length, 6);
    t.true(answers.every((a) => !a.ok && a.reason.startsWith(`${VERIFIER_UNAVAILABLE}:`)));
    t.is(new Set(answers.map((a) => a.id)).size, 6, 'one answer per request id');
    const next = await link.verify(patch([allowed]));
    t.true(next.ok, next.reason);
  });

  test(`${transport}: many requests at once: one answer each, in any order`, async (t) => {
    const link = await startLink(transport);
    t.teardown(() => link.dispose());
    const answers = await Promise.all(Array.from({ length: 64 }, (_, i) => link.verify(patch(i % 2 ? [allowed] : [allowed, denied]))));
    t.is(new Set(answers.map((a) => a.id)).size, 64);
    t.true(answers.every((a, i) => a.ok === (i % 2 === 1)));
  });

  test(`${transport}: beyond maxInFlight a request gets a retryable "verifier busy" at once`, async (t) => {
    const link = await startLink(transport, { maxInFlight: 2, timeoutMs: 1500 });
    t.teardown(() => link.dispose());
    t.true(await link.injectFault('hang'));
    const held = [link.verify(patch([allowed])), link.verify(patch([allowed]))];
    const busy = await link.verify(patch([allowed]));
    t.true(isRetryable(busy), busy.reason);
    t.regex(busy.reason, /^verifier busy: 2 requests in flight, the bound is 2/);
    const late = await Promise.all(held);
    t.true(late.every((a) => a.reason.startsWith(VERIFIER_UNAVAILABLE)));
    t.true((await link.verify(patch([allowed]))).ok);
  });
}

test('the same requests get the same verdicts over comlink and over the ring', async (t) => {
  const [a, b] = await Promise.all([startLink('comlink'), startLink('ring')]);
  t.teardown(() => Promise.all([a.dispose(), b.dispose()]));
  const jl: PatchItem = {
    kind: 'jump-label',
    site: K.jump2.site,
    oldBytes: Uint8Array.of(0x66, 0x90),
    newBytes: Uint8Array.of(0xeb, Number(K.jump2.target - K.jump2.site - 2n)),
    currentBytes: Uint8Array.of(0x66, 0x90),
  };
  const kp: PatchItem = { kind: 'kprobe', site: K.func, oldBytes: Uint8Array.of(0x55), newBytes: Uint8Array.of(0xcc), currentBytes: Uint8Array.of(0x55) };
  const stale: PatchItem = { ...allowed, oldBytes: Uint8Array.of(1, 2, 3, 4, 5) };
  const batches: PatchItem[][] = [[allowed], [allowed, denied], [jl], [allowed, jl, kp, stale], [enable(K.mcount[1]), enable(K.initMcount)], []];
  for (const items of batches) {
    const [x, y] = await Promise.all([a.verify(patch(items)), b.verify(patch(items))]);
    t.deepEqual(plain(y), plain(x), `batch of ${items.length}`);
  }
  t.is(b.stats.viaRing, batches.length);
});

test('ring: a batch too big for the ring goes over comlink, a verdict too big for it is collected over comlink', async (t) => {
  const link = await startLink('ring', { ring: { requestBytes: 4096, verdictBytes: 4096 } });
  t.teardown(() => link.dispose());
  const big = await link.verify(patch(Array.from({ length: 200 }, () => allowed)));
  t.true(big.ok, big.reason);
  t.is(big.items?.length, 200);
  t.is(link.stats.viaRing, 0, '200 records (8 KB) do not fit a 4 KiB ring');
  // 60 denied items: each reason is text (~100 bytes): the verdict does not fit 4 KiB.
  const many = await link.verify(patch(Array.from({ length: 60 }, (_, i) => enable(K.mcount[0] + BigInt(i + 1)))));
  t.is(link.stats.viaRing, 1);
  t.false(many.ok);
  t.is(many.items?.length, 60);
  t.regex(many.items![59]!.reason, /0xffffffff8100013c is not an ftrace site/);
});
