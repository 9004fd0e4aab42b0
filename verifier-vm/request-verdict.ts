/**
 * The engine's verdict on a protocol request from the checked answers of the plugins that
 * claim it (verifier-vm/plugin-result.ts), combined by the rule of plugin-api.ts (deny beats
 * allow beats abstain, per item for batches, default deny); then the plugins' commit hooks.
 * Verifier#decide (verifier.ts) calls it; the record path's counterpart is record-batch.ts,
 * on the same rule ({@link supersedes}).
 */
import { PROTOCOL_VERSION, type SectionGrant, type Verdict, type VerifyRequest } from '../shared/protocol.ts';
import { ABSTAIN, ALLOW, CODE, DENY } from './item-decisions.ts';
import type { AnyPlugin, PluginContext } from './plugin-api.ts';
import { runCommit, supersedes, type CheckedResult } from './plugin-result.ts';

/** Items of a batch request (text-patch items, set-memory ranges); 0 for the other kinds. */
export function itemCount(r: VerifyRequest): number {
  if (r.kind === 'text-patch') return r.items.length;
  if (r.kind === 'set-memory') return r.ranges.length;
  return 0;
}

/** The verdict on `request` from its claimants' checked results (in order), then their commit hooks. */
export function combineResults(request: VerifyRequest, claimants: readonly AnyPlugin[], results: readonly CheckedResult[], ctxFor: (p: AnyPlugin) => PluginContext): Verdict {
  const n = itemCount(request);
  const itemCode = new Uint8Array(n);
  const itemReason: string[] = new Array<string>(n).fill('');
  let overall = ABSTAIN;
  let overallReason = '';
  let grants: readonly SectionGrant[] | undefined;
  const deciders: string[] = [];
  results.forEach((r, pi) => {
    const name = claimants[pi]!.name;
    const code = CODE[r.decision];
    const items = r.items;
    if (code !== ABSTAIN || (items && items.allowed + items.denied > 0)) deciders.push(name);
    if (supersedes(overall, code)) {
      overall = code;
      overallReason = `${name}: ${r.reason}`;
    }
    if (r.grants && r.decision === 'allow') grants = r.grants;
    for (let i = 0; i < n; i++) {
      // Without items, a deny denies every item and anything else leaves them to the others.
      const d = items ? (items.decision[i] as number) : code === DENY ? DENY : ABSTAIN;
      if (supersedes(itemCode[i] as number, d)) {
        itemCode[i] = d;
        itemReason[i] = `${name}: ${items ? (items.textOf(i) ?? '') : r.reason}`;
      }
    }
  });
  let ok: boolean;
  let reason: string;
  let outItems: Verdict['items'];
  if (n > 0) {
    outItems = Array.from(itemCode, (c, i) =>
      c === ALLOW ? { ok: true, reason: itemReason[i]! } : { ok: false, reason: c === DENY ? itemReason[i]! : `no plugin allowed this ${request.kind} item (default deny)` },
    );
    const denied = outItems.filter((i) => !i.ok);
    ok = overall !== DENY && denied.length === 0;
    reason = overall === DENY ? overallReason : ok ? `all ${n} items allowed` : `${denied.length} of ${n} items denied; first: ${denied[0]!.reason}`;
  } else {
    ok = overall === ALLOW;
    reason = overall === ABSTAIN ? `no plugin allowed this ${request.kind} request (default deny)` : overallReason;
  }
  // TRUST: a failing commit must not turn a verdict around after the fact; the plugin's
  // state update is lost, which makes later requests fail closed, never open.
  for (const p of claimants) runCommit(() => p.commit?.(request as never, ok, ctxFor(p)));
  return {
    v: PROTOCOL_VERSION,
    id: request.id,
    ok,
    reason,
    ...(outItems ? { items: outItems } : {}),
    ...(ok && grants ? { grants } : {}),
    plugins: deciders,
  };
}
