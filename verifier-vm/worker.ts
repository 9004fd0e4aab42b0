/**
 * The verifier VM: a worker thread that owns the keyring, the manifest and the plugins, and
 * answers verification requests. The core reaches it only through comlink messages
 * (hypervisor/verifier-link); it receives byte copies, never references.
 *
 * Started from worker-entry.mjs (which registers tsx, since a worker does not inherit it).
 */
import { parentPort, workerData } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint, { type NodeEndpoint } from 'comlink/dist/esm/node-adapter.mjs';
import type { Verifier } from './verifier.ts';
import { buildVerifier, pluginsFor } from './verifier-setup.ts';
import type { InitResult, InjectedFault, RingServerTiming, VerifierWorkerApi, WorkerInit } from '../shared/worker-api.ts';
import { RingServer, DEFAULT_RING_TIMING } from './ring-server.ts';
import { kprobePlugin } from './plugins/kprobe.ts';
import { jumpLabelPlugin } from './plugins/jump-label.ts';
import { staticCallPlugin } from './plugins/static-call.ts';
import type { PatchKindName } from '../shared/heki-descriptors.ts';
import type { RingLayout } from '../shared/ring/layout.ts';
import { HAVE_WAIT_ASYNC } from '../shared/ring/wait-async.ts';
import { attachProgress } from '../shared/progress.ts';

/** The built-in text-patch plugins with a commit hook, and the item kind whose allowed items change their state. */
const STATEFUL_BUILTIN_KINDS = new Map<unknown, PatchKindName>([
  [kprobePlugin, 'kprobe'],
  [jumpLabelPlugin, 'jump-label'],
  [staticCallPlugin, 'static-call'],
]);

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

const api: VerifierWorkerApi = {
  async init(config: WorkerInit): Promise<InitResult> {
    const plugins = await pluginsFor(config);
    if (!plugins.ok) return { ok: false, error: plugins.error };
    const built = buildVerifier(config, plugins.value);
    if (!built.ok) return { ok: false, error: built.error };
    verifier = built.value.verifier;
    const manifestInfo = built.value.manifest;
    faultInjection = config.faultInjection === true;
    // Which text-patch verdicts change this verifier's state (and so go into the link's
    // journal): those with an item of a kind a built-in stateful plugin keeps state for
    // (kprobes; jump-label and static-call items move the key states module loads are
    // predicted with), unless another text-patch plugin keeps state (has a commit hook).
    const textPatchCommits = plugins.value.filter((p) => p.commit !== undefined && (p.kinds as readonly string[]).includes('text-patch'));
    const statefulTextPatch: 'always' | PatchKindName[] = textPatchCommits.some((p) => !STATEFUL_BUILTIN_KINDS.has(p))
      ? 'always'
      : textPatchCommits.map((p) => STATEFUL_BUILTIN_KINDS.get(p)!);
    return {
      ok: true,
      plugins: verifier.plugins().map((p) => ({ name: p.name, kinds: p.kinds })),
      statefulTextPatch,
      ...(manifestInfo ? { manifest: manifestInfo } : {}),
    };
  },

  async verify(message: unknown): Promise<unknown> {
    const fault = takeFault();
    if (fault === 'crash') process.exit(70);
    if (fault === 'hang') for (;;);
    if (fault === 'garbage') return { nonsense: true };
    if (!verifier) return { v: 1, id: -1, ok: false, reason: 'verifier not initialised', plugins: [] };
    // A plugin's promise is awaited; one that never settles reports no progress and is cut by
    // the link's watchdog, which ends this worker, as it ends one that loops.
    const v = await verifier.verify(message, { async: true });
    return fault === 'wrong-id' ? { ...v, id: v.id + 1000 } : v;
  },

  stats() {
    return verifier ? { ...verifier.stats } : { requests: 0, allowed: 0, denied: 0, malformed: 0 };
  },

  resetVm(vm: string): void {
    verifier?.resetVm(vm);
  },

  setOnlineCpus(vm: string, online: number): string | undefined {
    if (!verifier) return 'the verifier is not initialised';
    if (typeof vm !== 'string') return 'the VM name is not a string';
    return verifier.setOnlineCpus(vm, online);
  },

  exportVm(vm: string): unknown {
    return verifier?.exportVm(vm);
  },

  exportVmSection(vm: string): Uint8Array | undefined {
    return typeof vm === 'string' ? verifier?.exportVmSection(vm) : undefined;
  },
  importVm(vm: string, section: unknown): string | undefined {
    return verifier ? verifier.importVm(vm, section) : 'the verifier is not initialised';
  },

  attachRing(layout: RingLayout, timing?: RingServerTiming): string | undefined {
    if (!verifier) return 'the verifier is not initialised';
    if (ring) return 'a ring is already attached';
    if (!HAVE_WAIT_ASYNC) return 'this runtime has no Atomics.waitAsync';
    const v = verifier;
    try {
      ring = new RingServer(
        layout,
        { patches: (id, vm, records) => v.verifyPatchRecords(id, vm, records, { async: true }), message: (m) => v.verify(m, { async: true }), takeFault },
        timing ?? DEFAULT_RING_TIMING,
      );
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
// The core's watchdog samples this word (hypervisor/verifier-link/watchdog.ts): the verifier's
// code bumps it as it works, so a busy host is told from a stuck verifier.
const progress: unknown = (workerData as { progress?: unknown } | null)?.progress;
if (progress instanceof SharedArrayBuffer) attachProgress(new Int32Array(progress, 0, 1));
Comlink.expose(api, nodeEndpoint(parentPort as unknown as NodeEndpoint));
