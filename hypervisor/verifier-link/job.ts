/**
 * One request on the verifier link, as the link sends it: its id, kind and VM, and its
 * protocol message or its text-patch records, each made from the other only when a path needs
 * it (hypervisor/verifier-link/verifier-link.ts).
 */
import { PATCH_KIND } from '../../shared/heki-descriptors.ts';
import { PROTOCOL_VERSION, type VerifyRequest } from '../../shared/protocol.ts';
import { PatchRecords } from '../../shared/ring/patch-records.ts';

/**
 * One request on its way, with its protocol message made only when a path needs it (a
 * record batch that goes over the ring never becomes 40,000 objects).
 */
export class Job {
  #message: VerifyRequest | undefined;
  #records: PatchRecords | string | undefined;
  constructor(
    readonly id: number,
    readonly kind: VerifyRequest['kind'],
    readonly vm: string,
    message: VerifyRequest | undefined,
    records: PatchRecords | undefined,
  ) {
    this.#message = message;
    this.#records = records;
  }

  /** The protocol message. */
  message(): VerifyRequest {
    if (!this.#message) {
      const r = this.#records as PatchRecords;
      this.#message = { v: PROTOCOL_VERSION, id: this.id, vm: this.vm, kind: 'text-patch', items: r.toItems() };
    }
    return this.#message;
  }

  /** The batch as records, or undefined when it is not a text-patch batch the ring can carry. */
  records(): PatchRecords | undefined {
    if (this.kind !== 'text-patch') return undefined;
    if (this.#records === undefined) {
      const items: unknown = (this.message() as Extract<VerifyRequest, { kind: 'text-patch' }>).items;
      // A malformed request goes over comlink, where the verifier's validator names the problem.
      this.#records = typeof this.vm === 'string' && Array.isArray(items) ? PatchRecords.fromItems(items) : 'not a well-formed batch';
    }
    return typeof this.#records === 'string' ? undefined : this.#records;
  }

  /** True when the batch has an item of one of `kinds` (PATCH_KIND values). */
  hasKindIn(kinds: ReadonlySet<number>): boolean {
    if (kinds.size === 0) return false;
    const r = this.kind === 'text-patch' ? this.records() : undefined;
    if (r) {
      const counts = r.kindCounts();
      for (const k of kinds) if ((counts[k] ?? 0) > 0) return true;
      return false;
    }
    const m = this.message();
    return m.kind === 'text-patch' && m.items.some((i) => kinds.has(PATCH_KIND[i.kind]));
  }
}
