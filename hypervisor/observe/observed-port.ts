/**
 * A {@link VerifierPort} that reports each request and its verdict to a {@link VmObserver}
 * (`verifierRequest`, `verdict`), around the port the core would use anyway. The VMM installs it
 * where it attaches a verifier (machine/machine.ts, machine/lifecycle/migration.ts); the
 * lifecycle's re-attachments reuse `auth.port`, so the wrapper carries over.
 *
 * It changes nothing: the same request reaches the port, the same verdict (or exception) the
 * core. A port that throws is reported as the verdict the core then takes
 * ({@link unavailableVerdict}: denied, "verifier unavailable"). Observer calls go through
 * {@link notify}.
 *
 * Sequence numbers belong to the observer: ports wrapped for the same observer (a migration's
 * new verifier) go on counting, so `seq` stays unique across a whole run.
 */
import type { Verdict } from '../../shared/protocol.ts';
import type { PatchRecords } from '../../shared/ring/patch-records.ts';
import { unavailableVerdict, type VerifierPort } from '../core/auth/authenticator.ts';
import type { OutgoingRequest } from '../verifier-link/verifier-link.ts';
import { notify, type VmObserver } from './vm-observer.ts';

/** The next sequence number of each observer. */
const counters = new WeakMap<VmObserver, { next: number }>();

function nextSeq(observer: VmObserver): number {
  let c = counters.get(observer);
  if (!c) counters.set(observer, (c = { next: 0 }));
  return c.next++;
}

/** Items of a batch request (text-patch items, set-memory ranges), else 1. */
export function requestItems(request: OutgoingRequest): number {
  if (request.kind === 'text-patch') return request.items.length;
  if (request.kind === 'set-memory') return request.ranges.length;
  return 1;
}

/** How to wrap a port. */
export interface ObservePortOptions {
  /** Called before each event (the core flushes its pending EPT run, so events stay in order). */
  readonly before?: () => void;
}

/**
 * `port`, reporting to `observer`; `port` itself when the observer watches neither requests
 * nor verdicts.
 */
export function observePort(port: VerifierPort, observer: VmObserver, options: ObservePortOptions = {}): VerifierPort {
  if (observer.verifierRequest === undefined && observer.verdict === undefined) return port;
  const before = options.before;

  /** Reports the request, asks, reports the verdict (or the failure the core will see). */
  const observed = async (
    vm: string,
    kind: OutgoingRequest['kind'],
    items: number,
    request: () => OutgoingRequest,
    ask: () => Promise<Verdict>,
  ): Promise<Verdict> => {
    const seq = nextSeq(observer);
    if (before) notify(before);
    const start = performance.now();
    if (observer.verifierRequest !== undefined) notify(() => observer.verifierRequest!({ seq, vm, kind, items, request, time: start }));
    const report = (verdict: Verdict) => {
      if (before) notify(before);
      const end = performance.now();
      if (observer.verdict !== undefined) notify(() => observer.verdict!({ seq, vm, kind, verdict, start, end }));
    };
    let v: Verdict;
    try {
      v = await ask();
    } catch (e) {
      report(unavailableVerdict(e));
      throw e;
    }
    report(v);
    return v;
  };

  const verifyPatches = port.verifyPatches?.bind(port);
  return {
    verify: (request) =>
      observed(
        request.vm,
        request.kind,
        requestItems(request),
        () => request,
        () => port.verify(request),
      ),
    ...(verifyPatches
      ? {
          verifyPatches: (request: { readonly vm: string; readonly records: PatchRecords }) => {
            let built: OutgoingRequest | undefined;
            // Built on first call only: an observer that only counts pays nothing per item.
            const lazy = (): OutgoingRequest => (built ??= { kind: 'text-patch', vm: request.vm, items: request.records.toItems() });
            return observed(request.vm, 'text-patch', request.records.count, lazy, () => verifyPatches(request));
          },
        }
      : {}),
    ...(port.resetVm ? { resetVm: port.resetVm.bind(port) } : {}),
    ...(port.exportVm ? { exportVm: port.exportVm.bind(port) } : {}),
    ...(port.exportVmSection ? { exportVmSection: port.exportVmSection.bind(port) } : {}),
  };
}
