/**
 * The core's link to the verifier VM: real worker threads over comlink. Fail closed on
 * crash, hang and garbage; exactly one answer per request; the spare takes over.
 */
import test from 'ava';
import { VerifierLink, type OutgoingRequest } from '../../hypervisor/verifier-link/verifier-link.ts';
import { VERIFIER_UNAVAILABLE } from '../../shared/protocol.ts';
import { signedBlob, testKeyring } from '../helpers/verifier-setup.ts';

const keys = testKeyring();

async function startLink(timeoutMs = 5000) {
  // module-signature only: these tests are about the link, not about ELF contents.
  return VerifierLink.start({ init: { keyring: keys.data, plugins: ['module-signature'], faultInjection: true }, timeoutMs });
}

function moduleLoad(image: Uint8Array, name = 'm'): OutgoingRequest {
  return { kind: 'module-load', vm: 'vm0', name, image, sections: [] };
}

test('a signed image is allowed and an unsigned one denied, with the plugin named', async (t) => {
  const link = await startLink();
  t.teardown(() => link.dispose());
  const good = await link.verify(moduleLoad(signedBlob(keys.keyPair)));
  t.true(good.ok, good.reason);
  t.deepEqual(good.plugins, ['module-signature']);
  const bad = await link.verify(moduleLoad(new TextEncoder().encode('plain bytes')));
  t.false(bad.ok);
  t.regex(bad.reason, /^module-signature: module m is not signed/);
});

test('a request kind no plugin claims is denied by default', async (t) => {
  const link = await startLink();
  t.teardown(() => link.dispose());
  const v = await link.verify({ kind: 'set-memory', vm: 'vm0', ranges: [] });
  t.false(v.ok);
  t.regex(v.reason, /no plugin claims set-memory requests \(default deny\)/);
});

test('a malformed request is answered with a denial naming the problem', async (t) => {
  const link = await startLink();
  t.teardown(() => link.dispose());
  const v = await link.verify({ kind: 'module-load', vm: 'vm0', name: 'm', image: 'not bytes', sections: [] } as unknown as OutgoingRequest);
  t.false(v.ok);
  t.is(v.reason, 'malformed request: request.image must be a Uint8Array');
});

for (const fault of ['crash', 'garbage', 'wrong-id'] as const) {
  test(`an injected ${fault} fails closed, restarts, and the next request is served`, async (t) => {
    const link = await startLink();
    t.teardown(() => link.dispose());
    t.true(await link.injectFault(fault));
    const v = await link.verify(moduleLoad(signedBlob(keys.keyPair)));
    t.false(v.ok);
    t.true(v.reason.startsWith(VERIFIER_UNAVAILABLE), v.reason);
    const next = await link.verify(moduleLoad(signedBlob(keys.keyPair)));
    t.true(next.ok, next.reason);
    t.is(link.stats.restarts, 1);
    t.is(link.stats.failClosed, 1);
  });
}

test('a hang times out; every request in flight gets exactly one fail-closed answer', async (t) => {
  const link = await startLink(400);
  t.teardown(() => link.dispose());
  t.true(await link.injectFault('hang'));
  const answers = await Promise.all(Array.from({ length: 6 }, (_, i) => link.verify(moduleLoad(signedBlob(keys.keyPair), `m${i}`))));
  t.is(answers.length, 6);
  t.true(answers.every((a) => !a.ok && a.reason.startsWith(`${VERIFIER_UNAVAILABLE}:`)));
  t.is(new Set(answers.map((a) => a.id)).size, 6, 'one answer per request id');
  const next = await link.verify(moduleLoad(signedBlob(keys.keyPair)));
  t.true(next.ok, next.reason);
});

test('allowed state-changing requests are replayed to the spare before it serves', async (t) => {
  const link = await startLink();
  t.teardown(() => link.dispose());
  t.true((await link.verify(moduleLoad(signedBlob(keys.keyPair), 'a'))).ok);
  t.true((await link.verify(moduleLoad(signedBlob(keys.keyPair), 'b'))).ok);
  t.true(await link.injectFault('crash'));
  t.false((await link.verify(moduleLoad(signedBlob(keys.keyPair), 'c'))).ok);
  const stats = (await link.workerStats()) as { requests: number; allowed: number };
  t.is(stats.allowed, 2, 'the promoted spare decided the two journaled loads again');
  t.true(typeof link.stats.lastFailoverMs === 'undefined' || link.stats.lastFailoverMs >= 0);
});

test('a verifier that refuses its configuration stops the VM from starting, naming why', async (t) => {
  await t.throwsAsync(VerifierLink.start({ init: { keyring: keys.data, plugins: ['no-such-plugin'] } }), {
    message: /the verifier VM refused to start: unknown plugin\(s\): no-such-plugin/,
  });
  await t.throwsAsync(VerifierLink.start({ init: { keyring: { ed25519: 'x' } as never } }), { message: /ed25519 is not an array/ });
});

test('after dispose, requests are denied rather than hanging', async (t) => {
  const link = await startLink();
  await link.dispose();
  const v = await link.verify(moduleLoad(signedBlob(keys.keyPair)));
  t.false(v.ok);
  t.true(v.reason.startsWith(VERIFIER_UNAVAILABLE));
});
