/**
 * The verifier VM: a worker thread that owns the keyring, the manifest and the plugins, and
 * answers verification requests. The core reaches it only through comlink messages
 * (hypervisor/verifier-link); it receives byte copies, never references.
 *
 * Started from worker-entry.mjs (which registers tsx, since a worker does not inherit it).
 */
import { parentPort } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import * as Comlink from 'comlink';
import nodeEndpoint, { type NodeEndpoint } from 'comlink/dist/esm/node-adapter.mjs';
import { Keyring } from './keyring.ts';
import { loadManifest } from './manifest.ts';
import { BUILTIN_PLUGINS } from './plugins/index.ts';
import { Verifier } from './verifier.ts';
import type { AnyPlugin } from './plugin-api.ts';
import type { InitResult, InjectedFault, VerifierWorkerApi, WorkerInit } from './worker-api.ts';
import { RingServer, DEFAULT_RING_TIMING, type RingServerTiming } from './ring-server.ts';
import { kprobePlugin } from './plugins/kprobe.ts';
import type { RingLayout } from '../shared/ring/layout.ts';
import { HAVE_WAIT_ASYNC } from '../shared/ring/wait-async.ts';

let verifier: Verifier | undefined;
let faultInjection = false;
let armed: InjectedFault | undefined;
let ring: RingServer | undefined;

/** Takes the armed fault: the next request, on comlink or on the ring, gets it. */
function takeFault(): InjectedFault | undefined {
  const f = armed;
  armed = undefined;
  return f;
}

async function loadPluginModule(path: string): Promise<AnyPlugin[]> {
  const mod = (await import(pathToFileURL(path).href)) as { default?: unknown };
  const d = mod.default;
  const list = Array.isArray(d) ? d : [d];
  for (const p of list) {
    const q = p as Partial<AnyPlugin> | undefined;
    if (!q || typeof q.name !== 'string' || !Array.isArray(q.kinds) || typeof q.decide !== 'function') {
      throw new Error(`${path}: default export is not a verifier plugin (name, kinds, decide)`);
    }
  }
  return list as AnyPlugin[];
}

const api: VerifierWorkerApi = {
  async init(config: WorkerInit): Promise<InitResult> {
    const keyring = Keyring.fromData(config.keyring);
    if (!keyring.ok) return { ok: false, error: keyring.error };
    let plugins: AnyPlugin[] = [...BUILTIN_PLUGINS];
    if (config.plugins) {
      const unknown = config.plugins.filter((n) => !BUILTIN_PLUGINS.some((p) => p.name === n));
      if (unknown.length) return { ok: false, error: `unknown plugin(s): ${unknown.join(', ')}` };
      plugins = BUILTIN_PLUGINS.filter((p) => config.plugins!.includes(p.name));
    }
    for (const path of config.pluginModules ?? []) {
      try {
        plugins.push(...(await loadPluginModule(path)));
      } catch (e) {
        return { ok: false, error: `cannot load plugin module ${path}: ${e instanceof Error ? e.message : String(e)}` };
      }
    }
    let manifestInfo: { kernel: string; keyId: string } | undefined;
    let manifest;
    if (config.manifest !== undefined) {
      const m = loadManifest(config.manifest, keyring.value);
      if (!m.ok) return { ok: false, error: `manifest refused: ${m.error}` };
      manifest = m.value;
      manifestInfo = { kernel: m.value.body.kernel, keyId: m.value.keyId };
    }
    try {
      verifier = new Verifier({ keyring: keyring.value, plugins, ...(manifest ? { manifest } : {}), ...(config.pluginConfig ? { pluginConfig: config.pluginConfig } : {}) });
    } catch (e) {
      return { ok: false, error: e instanceof Error ? e.message : String(e) };
    }
    faultInjection = config.faultInjection === true;
    // Which text-patch verdicts change this verifier's state (and so go into the link's
    // journal): only those with kprobe items, unless a text-patch plugin other than the
    // built-in kprobe one keeps state (has a commit hook).
    const statefulTextPatch = plugins.some((p) => p.commit !== undefined && p !== kprobePlugin && (p.kinds as readonly string[]).includes('text-patch')) ? 'always' : 'kprobe-items';
    return { ok: true, plugins: verifier.plugins().map((p) => ({ name: p.name, kinds: p.kinds })), statefulTextPatch, ...(manifestInfo ? { manifest: manifestInfo } : {}) };
  },

  verify(message: unknown): unknown {
    const fault = takeFault();
    if (fault === 'crash') process.exit(70);
    if (fault === 'hang') for (;;);
    if (fault === 'garbage') return { nonsense: true };
    if (!verifier) return { v: 1, id: -1, ok: false, reason: 'verifier not initialised', plugins: [] };
    const v = verifier.verify(message);
    return fault === 'wrong-id' ? { ...v, id: v.id + 1000 } : v;
  },

  stats() {
    return verifier ? { ...verifier.stats } : { requests: 0, allowed: 0, denied: 0, malformed: 0 };
  },

  resetVm(vm: string): void {
    verifier?.resetVm(vm);
  },

  exportVm(vm: string): unknown {
    return verifier?.exportVm(vm);
  },

  attachRing(layout: RingLayout, timing?: RingServerTiming): string | undefined {
    if (!verifier) return 'the verifier is not initialised';
    if (ring) return 'a ring is already attached';
    if (!HAVE_WAIT_ASYNC) return 'this runtime has no Atomics.waitAsync';
    const v = verifier;
    try {
      ring = new RingServer(layout, { patches: (id, vm, records) => v.verifyPatchRecords(id, vm, records), message: (m) => v.verify(m), takeFault }, timing ?? DEFAULT_RING_TIMING);
    } catch (e) {
      return e instanceof Error ? e.message : String(e);
    }
    ring.start();
    // Build the indexes and optimise the record path now, not on the first real batch.
    v.warmUp();
    return undefined;
  },

  collect(id: number): unknown {
    return ring?.collect(id);
  },

  inject(fault: InjectedFault): boolean {
    if (!faultInjection) return false;
    armed = fault;
    return true;
  },
};

if (!parentPort) throw new Error('verifier-vm/worker.ts must run in a worker thread');
Comlink.expose(api, nodeEndpoint(parentPort as unknown as NodeEndpoint));
