/**
 * text_poke through the hypervisor: the guest kernel never holds a writable alias of its text.
 * Patches are sent in batches (one hypercall and one verifier round trip per batch); a batch
 * is applied whole or not at all, and the per-patch statuses say which patch was refused.
 */
import type { PatchRequest } from '../../shared/heki-descriptors.ts';
import type { PatchBatchBuilder } from '../../shared/patch-batch-builder.ts';
import { PATCH_STATUS } from '../../shared/heki-descriptors.ts';
import type { HekiHypervisor } from '../heki/hypervisor.ts';

/** Patches per batch: 60,000 x 32 bytes fits the 2 MiB scratch buffer. */
export const PATCH_BATCH = 60_000;

/** What a poke did. */
export type PokeResult =
  | { readonly ok: true; readonly patches: number; readonly batches: number }
  | { readonly ok: false; readonly reason: string; readonly denied: readonly number[]; readonly applied: number };

/** Sends patches to the hypervisor. */
export class TextPoker {
  constructor(private readonly hv: HekiHypervisor) {}

  /** Applies `patches` in batches; stops at the first refused batch. */
  async poke(patches: readonly PatchRequest[]): Promise<PokeResult> {
    if (!this.hv.textPoke) return { ok: false, reason: `the ${this.hv.name} backend cannot patch text after boot`, denied: [], applied: 0 };
    let applied = 0;
    let batches = 0;
    for (let i = 0; i < patches.length; i += PATCH_BATCH) {
      const chunk = patches.slice(i, i + PATCH_BATCH);
      const r = await this.hv.textPoke(chunk);
      batches++;
      if (!r.ok) {
        const denied = r.statuses.flatMap((s, j) => (s === PATCH_STATUS.DENIED ? [i + j] : []));
        return {
          ok: false,
          reason: `text patch refused: ${r.name}${denied.length ? ` (first denied: patch ${denied[0]} at 0x${patches[denied[0]!]!.site.toString(16)})` : ''}`,
          denied,
          applied,
        };
      }
      applied += chunk.length;
    }
    return { ok: true, patches: applied, batches };
  }

  /**
   * {@link poke} for patches already encoded by a {@link PatchBatchBuilder} (no object per
   * patch); the same batches, statuses and result.
   */
  async pokeBatch(b: PatchBatchBuilder): Promise<PokeResult> {
    const hv = this.hv;
    if (!hv.textPokeBatch) return this.poke(b.requests());
    let applied = 0;
    let batches = 0;
    for (let i = 0; i < b.count; i += PATCH_BATCH) {
      const end = Math.min(b.count, i + PATCH_BATCH);
      const r = await hv.textPokeBatch(b.batch(i, end));
      batches++;
      if (!r.ok) {
        const denied = r.statuses().flatMap((s, j) => (s === PATCH_STATUS.DENIED ? [i + j] : []));
        return {
          ok: false,
          reason: `text patch refused: ${r.name}${denied.length ? ` (first denied: patch ${denied[0]} at 0x${b.site(denied[0]!).toString(16)})` : ''}`,
          denied,
          applied,
        };
      }
      applied += end - i;
    }
    return { ok: true, patches: applied, batches };
  }
}
