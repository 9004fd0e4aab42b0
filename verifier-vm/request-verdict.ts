/**
 * The object form of a request for the plugin engine (plugin-engine.ts): a protocol request of
 * any kind, as comlink carries it, asked of each plugin through `decide` and committed through
 * `commit`; and the protocol verdict made from the engine's packed one. Verifier#verify
 * (verifier.ts) uses it; the record form of a text-patch batch is record-batch.ts.
 */
import { PROTOCOL_VERSION, type Verdict, type VerifyRequest } from '../shared/protocol.ts';
import { expandItems } from '../shared/ring/verdict-codec.ts';
import type { EngineOutcome, RequestForm } from './plugin-engine.ts';

/** Items of a batch request (text-patch items, set-memory ranges); 0 for the other kinds. */
export function itemCount(r: VerifyRequest): number {
  if (r.kind === 'text-patch') return r.items.length;
  if (r.kind === 'set-memory') return r.ranges.length;
  return 0;
}

/** The address of item `i` of a batch request as `hex()` prints it: a patch's site, a range's first page. */
function itemAddressHex(r: VerifyRequest, i: number): string {
  if (r.kind === 'text-patch') return `0x${r.items[i]!.site.toString(16)}`;
  if (r.kind === 'set-memory') return `0x${r.ranges[i]!.addr.toString(16)}`;
  return '';
}

/** `request` (already shape-checked) as the engine decides it. */
export function requestForm(request: VerifyRequest): RequestForm {
  return {
    id: request.id,
    kind: request.kind,
    count: itemCount(request),
    // Only a record fast path may answer with packed items; `decide` answers with an array.
    packed: false,
    ask: (p, ctx) => p.decide(request as never, ctx),
    commit: (p, ok, ctx) => p.commit?.(request as never, ok, ctx),
    siteHex: (i) => itemAddressHex(request, i),
  };
}

/** The protocol verdict of the engine's `outcome` on `form`: its items expanded, its grants when ok. */
export function protocolVerdict(form: RequestForm, outcome: EngineOutcome): Verdict {
  const v = outcome.verdict;
  return {
    v: PROTOCOL_VERSION,
    id: v.id,
    ok: v.ok,
    reason: v.reason,
    ...(v.items ? { items: expandItems(v.items, (i) => form.siteHex(i)) } : {}),
    ...(outcome.grants ? { grants: outcome.grants } : {}),
    plugins: v.plugins,
  };
}
