/**
 * The example plugin of docs/plugins.md section 8, taken from the page itself (so the page
 * stays accurate): run in process next to the built-ins, and loaded by a real verifier worker
 * through WorkerInit.pluginModules.
 */
import test from 'ava';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint, { type NodeEndpoint } from 'comlink/dist/esm/node-adapter.mjs';
import { validateVerdict } from '../../shared/protocol.ts';
import type { AnyPlugin } from '../../verifier-vm/plugin-api.ts';
import { BUILTIN_PLUGINS } from '../../verifier-vm/plugins/index.ts';
import { Keyring } from '../../verifier-vm/keyring.ts';
import { signManifest } from '../../tools/manifest-builder.ts';
import { ed25519KeyIdHex, generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { Verifier } from '../../verifier-vm/verifier.ts';
import { VERIFIER_WORKER_ENTRY, type VerifierWorkerApi } from '../../shared/worker-api.ts';
import { K, item, patchRequest, syntheticBody, syntheticManifest } from './plugin-synthetic.ts';

const DOC = new URL('../../docs/plugins.md', import.meta.url);
const MARKER = '<!-- example-plugin: kprobe-one-symbol.ts -->';

/** The example plugin's source, as docs/plugins.md shows it. */
function exampleSource(): string {
  const text = readFileSync(DOC, 'utf8');
  const at = text.indexOf(MARKER);
  if (at < 0) throw new Error(`docs/plugins.md lacks ${MARKER}`);
  const m = /```ts\n([\s\S]*?)```/.exec(text.slice(at));
  if (!m) throw new Error('no ts block after the example marker');
  return m[1]!;
}

const dir = mkdtempSync(join(tmpdir(), 'heki-plugin-example-'));
const pluginPath = join(dir, 'kprobe-one-symbol.ts');
writeFileSync(pluginPath, exampleSource());
test.after.always(() => rmSync(dir, { recursive: true, force: true }));

const CONFIG = {
  kprobe: { allow: [{ start: 'ffffffff81000000', end: 'ffffffff81010000' }] },
  'kprobe-one-symbol': { symbol: 'printk', length: 0x40 },
};

test('in process: kprobes only inside printk (the test shown in docs/plugins.md)', async (t) => {
  const plugin = ((await import(pathToFileURL(pluginPath).href)) as { default: AnyPlugin }).default;
  const v = new Verifier({ keyring: Keyring.empty(), plugins: [...BUILTIN_PLUGINS, plugin], manifest: syntheticManifest(), pluginConfig: CONFIG });
  t.true(v.verify(patchRequest([item('kprobe', K.func + 0x10n, [0x55], [0xcc])])).ok);
  const outside = v.verify(patchRequest([item('kprobe', K.func + 0x80n, [0x55], [0xcc])]));
  t.false(outside.ok);
  t.is(outside.items![0]!.reason, 'kprobe-one-symbol: 0xffffffff81002080 is outside printk');
  t.true(v.verify(patchRequest([item('kprobe', K.func + 0x10n, [0xcc], [0x55])])).ok, 'removal is untouched');
});

test('in process: bad configuration is a named denial, not a throw', async (t) => {
  const plugin = ((await import(pathToFileURL(pluginPath).href)) as { default: AnyPlugin }).default;
  for (const [config, reason] of [
    [{}, 'config needs symbol (string) and length (positive integer)'],
    [{ symbol: 'printk', length: 1.5 }, 'config needs symbol (string) and length (positive integer)'],
    [{ symbol: 'no_such_fn', length: 16 }, 'no_such_fn is not an exported kernel symbol'],
  ] as const) {
    const v = new Verifier({
      keyring: Keyring.empty(),
      plugins: [...BUILTIN_PLUGINS, plugin],
      manifest: syntheticManifest(),
      pluginConfig: { ...CONFIG, 'kprobe-one-symbol': config },
    });
    t.is(v.verify(patchRequest([item('kprobe', K.func, [0x55], [0xcc])])).items![0]!.reason, `kprobe-one-symbol: ${reason}`);
  }
});

test('through the worker: WorkerInit.pluginModules loads the example after the built-ins', async (t) => {
  const vendor = generateEd25519KeyPair();
  const keyId = ed25519KeyIdHex(vendor.publicKey);
  const manifest = signManifest(syntheticBody(), vendor);
  const keyring = Keyring.fromData({
    ed25519: [{ keyId, role: 'kernel-vendor', publicKey: vendor.publicKey }],
    certificates: [],
    revoked: { ed25519KeyIds: [], x509Sha256: [] },
  });
  if (!keyring.ok) throw new Error(keyring.error);

  const worker = new Worker(VERIFIER_WORKER_ENTRY);
  const api = Comlink.wrap<VerifierWorkerApi>(nodeEndpoint(worker as unknown as NodeEndpoint));
  try {
    const init = await api.init({ keyring: keyring.value.toData(), manifest, pluginModules: [pluginPath], pluginConfig: CONFIG });
    if (!init.ok) throw new Error(init.error);
    const names = init.plugins.map((p) => p.name);
    t.is(names.at(-1), 'kprobe-one-symbol');
    t.deepEqual(
      names.slice(0, -1),
      BUILTIN_PLUGINS.map((p) => p.name),
    );

    const inside = validateVerdict(await api.verify(patchRequest([item('kprobe', K.func + 0x10n, [0x55], [0xcc])])));
    t.true(inside.ok && inside.verdict.ok);
    const outside = validateVerdict(await api.verify(patchRequest([item('kprobe', K.func + 0x80n, [0x55], [0xcc])])));
    t.true(outside.ok);
    if (outside.ok) t.is(outside.verdict.items?.[0]?.reason, 'kprobe-one-symbol: 0xffffffff81002080 is outside printk');

    const bad = await api.init({ keyring: keyring.value.toData(), manifest, pluginModules: [join(dir, 'missing.ts')] });
    t.false(bad.ok);
    if (!bad.ok) t.regex(bad.error, /^cannot load plugin module .*missing\.ts/);
  } finally {
    api[Comlink.releaseProxy]();
    await worker.terminate();
  }
});
