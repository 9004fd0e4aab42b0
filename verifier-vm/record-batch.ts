/**
 * The record form of a text-patch batch for the plugin engine (plugin-engine.ts): the items in
 * fixed-size records (shared/ring/patch-records.ts), the volume path of the verification ring
 * (38,252 live ftrace sites in the Debian kernel, one batch per `ftrace.set()`). A plugin with
 * a record fast path (`decideRecords`, `commitRecords`) reads the records and answers with
 * packed decisions; any other is asked through `decide` with protocol items, made from the
 * records once, on first use.
 *
 * INVARIANT: the engine's packed verdict on a batch expands (expandItems) to exactly the
 * verdict `Verifier.verify` gives for the same items as an object request: one engine decides
 * both (test/unit/plugin-engine-forms.test.ts checks it).
 */
import { PROTOCOL_VERSION, type RequestOf } from '../shared/protocol.ts';
import { PATCH_KIND, type PatchKindName } from '../shared/heki-descriptors.ts';
import type { PatchRecords } from '../shared/ring/patch-records.ts';
import type { RecordBatch } from './plugin-decisions.ts';
import type { RequestForm } from './plugin-engine.ts';

const batches = new WeakMap<object, RecordBatch>();

/** A text-patch batch in record form (the documented shape is plugin-decisions.ts `RecordBatch`). */
class Batch implements RecordBatch {
  readonly kindCounts: readonly number[];
  #request: RequestOf<'text-patch'> | undefined;

  constructor(
    readonly id: number,
    readonly vm: string,
    readonly records: PatchRecords,
  ) {
    this.kindCounts = records.kindCounts();
  }

  get request(): RequestOf<'text-patch'> {
    if (!this.#request) {
      this.#request = { v: PROTOCOL_VERSION, id: this.id, vm: this.vm, kind: 'text-patch', items: this.records.toItems() };
      batches.set(this.#request, this);
    }
    return this.#request;
  }
}

/** Records of `kind` in `request`, counted from the records when it came as a batch. */
export function patchKindCount(request: RequestOf<'text-patch'>, kind: PatchKindName): number {
  const b = batches.get(request);
  if (b) return b.kindCounts[PATCH_KIND[kind]] ?? 0;
  let n = 0;
  for (const it of request.items) if (it.kind === kind) n++;
  return n;
}

/** Wraps records (which passed `PatchRecords.validate()`) as a batch. */
export function recordBatch(id: number, vm: string, records: PatchRecords): RecordBatch {
  return new Batch(id, vm, records);
}

/** `batch` as the engine decides it: each plugin through its record fast path where it has one. */
export function recordForm(batch: RecordBatch): RequestForm {
  return {
    id: batch.id,
    kind: 'text-patch',
    count: batch.records.count,
    packed: true,
    ask: (p, ctx) => p.decideRecords?.(batch, ctx) ?? p.decide(batch.request as never, ctx),
    commit: (p, ok, ctx) => (p.commitRecords ? p.commitRecords(batch, ok, ctx) : p.commit?.(batch.request as never, ok, ctx)),
    siteHex: (i) => batch.records.siteHex(i),
  };
}
