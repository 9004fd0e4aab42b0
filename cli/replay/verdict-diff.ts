/**
 * How `heki replay` compares a replayed verdict with the recorded one: the decision, the
 * reason, the grants (module loads) and, for batches, every item's decision and reason. Item
 * reasons of a text-patch batch decided on the record path stay packed until compared
 * (shared/ring/verdict-codec.ts): 40,000 allowed items cost no object each.
 */
import type { Verdict } from '../../shared/protocol.ts';
import type { RecordedRequest } from '../../shared/request-log.ts';
import { itemReason, type PackedVerdict } from '../../shared/ring/verdict-codec.ts';
import type { PatchRecords } from '../../shared/ring/patch-records.ts';

/** A decision and its reason. */
export interface Decided {
  readonly ok: boolean;
  readonly reason: string;
}

/** One batch item whose verdict differs. */
export interface ItemDifference {
  readonly index: number;
  /** Text-patch items: the patch site (`0x...`). */
  readonly site?: string;
  /** Set-memory ranges: the first page (`0x...`). */
  readonly addr?: string;
  readonly recorded: Decided | null;
  readonly replayed: Decided | null;
}

/** How a verdict differs. */
export interface VerdictDifference {
  readonly recorded: Decided;
  readonly replayed: Decided;
  /** Batches whose items differ: how many of how many, and the first few. */
  readonly items?: { readonly differ: number; readonly of: number; readonly first: readonly ItemDifference[] };
  /** Module loads whose grants differ. */
  readonly grants?: { readonly recorded: Verdict['grants'] | null; readonly replayed: Verdict['grants'] | null };
}

/** Items listed per differing request. */
export const FIRST_ITEMS = 5;

/** A replayed verdict as the comparison reads it: protocol form, or packed with its records. */
export type Replayed =
  | { readonly form: 'verdict'; readonly verdict: Verdict }
  | { readonly form: 'packed'; readonly verdict: PackedVerdict; readonly records: PatchRecords; readonly grants?: Verdict['grants'] };

const hex = (v: bigint): string => `0x${v.toString(16)}`;

/** Where item `i` of `request` is, for a message. */
function whereOf(request: RecordedRequest, i: number): { site?: string; addr?: string } {
  if (request.kind === 'text-patch') {
    const it = request.items[i];
    return it ? { site: hex(it.site) } : {};
  }
  if (request.kind === 'set-memory') {
    const r = request.ranges[i];
    return r ? { addr: hex(r.addr) } : {};
  }
  return {};
}

function sameGrants(a: Verdict['grants'], b: Verdict['grants']): boolean {
  const x = a ?? [];
  const y = b ?? [];
  return x.length === y.length && x.every((g, i) => g.shndx === y[i]!.shndx && g.permissions === y[i]!.permissions);
}

/** How `replayed` differs from `recorded` on `request`, or undefined when it does not. */
export function diffVerdicts(request: RecordedRequest, recorded: Verdict, replayed: Replayed): VerdictDifference | undefined {
  const r = replayed.verdict;
  const replayedGrants = replayed.form === 'verdict' ? replayed.verdict.grants : replayed.grants;
  // Per item of the replayed verdict.
  let count: number;
  let itemAt: (i: number) => Decided;
  if (replayed.form === 'packed') {
    const items = replayed.verdict.items;
    const siteHex = (i: number): string => replayed.records.siteHex(i);
    count = items?.count ?? 0;
    itemAt = (i) => ({ ok: items!.ok[i] === 1, reason: itemReason(items!, i, siteHex) });
  } else {
    const items = replayed.verdict.items ?? [];
    count = items.length;
    itemAt = (i) => ({ ok: items[i]!.ok, reason: items[i]!.reason });
  }
  const recItems = recorded.items ?? [];
  const n = Math.max(count, recItems.length);
  let differ = 0;
  const first: ItemDifference[] = [];
  for (let i = 0; i < n; i++) {
    const a = recItems[i];
    const b = i < count ? itemAt(i) : undefined;
    if (a && b && a.ok === b.ok && a.reason === b.reason) continue;
    differ++;
    if (first.length < FIRST_ITEMS) {
      first.push({ index: i, ...whereOf(request, i), recorded: a ? { ok: a.ok, reason: a.reason } : null, replayed: b ?? null });
    }
  }
  const grantsDiffer = !sameGrants(recorded.grants, replayedGrants);
  if (differ === 0 && !grantsDiffer && recorded.ok === r.ok && recorded.reason === r.reason) return undefined;
  return {
    recorded: { ok: recorded.ok, reason: recorded.reason },
    replayed: { ok: r.ok, reason: r.reason },
    ...(differ > 0 ? { items: { differ, of: n, first } } : {}),
    ...(grantsDiffer ? { grants: { recorded: recorded.grants ?? null, replayed: replayedGrants ?? null } } : {}),
  };
}
