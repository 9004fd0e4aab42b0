/**
 * heki-sim KVM_HC_HEKI_TEXT_PATCH (18): a0 = guest-physical address of a patch batch
 * (shared/heki-descriptors.ts). The guest never holds a writable alias of text: it asks, and
 * the core writes. Each site is resolved through the core's trusted code map (kernel text
 * from the manifest, module text from its verified load), never through the guest's page
 * tables. The batch is all or nothing: applied only when every patch is allowed. The core
 * writes each entry's status back into the batch (0 applied, 1 denied, 2 not applied).
 */
import { KVM_STATUS } from '../../shared/abi.ts';
import { PATCH_BATCH_HEADER, PATCH_ENTRY, PATCH_STATUS } from '../../shared/heki-descriptors.ts';
import { isRetryable } from '../../shared/protocol.ts';
import { PATCH_RECORD, PR } from '../../shared/ring/layout.ts';
import { PATCH_KIND_NAMES, hexU64, type PatchRecords } from '../../shared/ring/patch-records.ts';
import { gpaAdd, type Gfn, type GuestPhysAddr } from '../../shared/addr.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import type { HypercallHandler } from './context.ts';
import { readPatchBatchRecords } from './patch-batch-records.ts';
import { authenticatedChange } from '../core/auth/authenticated-change.ts';

const PAGE = 4096;
/** 2^20: a page number is `hi * 2^20 + (lo >>> 12)` for the u64 address `hi:lo` (exact below 2^52). */
const VPN_HI = 0x10_0000;
/** Offset of the status byte in a batch entry. */
const ENTRY_STATUS = 10;

export const textPatch: HypercallHandler = (ctx, [a0]) => {
  const { core } = ctx;
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  // The batch straight into verification records (shared/ring/patch-records.ts): the same
  // checks as readPatchBatch, no object per entry (ftrace on all sites is 38,252 of them).
  const batch = readPatchBatchRecords(core.memory, a0);
  if (!batch.ok) return -KVM_STATUS.KVM_EINVAL;
  const { at: batchAt, records } = batch.value;
  const n = records.count;
  const status = new Uint8Array(n).fill(PATCH_STATUS.NOT_APPLIED);
  // Where each site lives, by the core's own records: the frame and offset of its first byte
  // and, for a site that crosses a page, the frame of its first byte on the next page.
  const at: Array<Gfn | undefined> = new Array(n);
  const atOff = new Uint16Array(n);
  const next: Array<Gfn | undefined> = new Array(n);
  let lastVpn = -1;
  let lastFrame: Gfn | undefined;
  const frameOf = (vpn: number): Gfn | undefined => {
    // Sites come sorted, so consecutive ones share a page: one trusted-map lookup per page.
    if (vpn !== lastVpn) {
      lastVpn = vpn;
      lastFrame = auth.codeFrame(BigInt(vpn) << 12n);
    }
    return lastFrame;
  };
  let unknown = -1;
  const frames: Gfn[] = [];
  for (let i = 0; i < n; i++) {
    const lo = records.siteLo(i);
    const vpn = records.siteHi(i) * VPN_HI + (lo >>> 12);
    const off = lo & (PAGE - 1);
    const f0 = frameOf(vpn);
    const f1 = off + records.len(i) > PAGE ? frameOf(vpn + 1) : f0;
    if (f0 === undefined || f1 === undefined) {
      if (unknown < 0) unknown = i;
      continue;
    }
    at[i] = f0;
    atOff[i] = off;
    if (frames[frames.length - 1] !== f0) frames.push(f0);
    if (f1 !== f0) {
      next[i] = f1;
      frames.push(f1);
    }
  }
  const mem = core.memory;
  return authenticatedChange(ctx, auth, {
    gate: 'verdict',
    kind: 'text-patch',
    subject: `${n} patches (${summary(records)})`,
    freeze: frames,
    snapshot: () => {
      // After the freeze: the bytes the verifier sees are the bytes in memory.
      for (let i = 0; i < n; i++) {
        const f = at[i];
        if (f === undefined) continue;
        const r = i * PATCH_RECORD + PR.CUR;
        const nf = next[i];
        const first = nf === undefined ? records.len(i) : PAGE - (atOff[i] as number);
        mem.copyOut(f, atOff[i] as number, records.bytes, r, first);
        if (nf !== undefined) mem.copyOut(nf, 0, records.bytes, r + first, records.len(i) - first);
      }
      // The core refuses on its own: it does not know this site as verified code.
      if (unknown >= 0)
        return { kind: 'refuse', reason: `site ${hexU64(records.siteLo(unknown), records.siteHi(unknown))} is not in verified kernel or module text` };
      return { kind: 'ask', question: { patches: records } };
    },
    denied: (verdict) => {
      if (unknown >= 0) {
        status[unknown] = PATCH_STATUS.DENIED;
        writeStatus(mem, batchAt, status);
        return { denied: 1 };
      }
      // A retryable refusal decided nothing: every entry stays "not applied".
      if (isRetryable(verdict)) {
        writeStatus(mem, batchAt, status);
        return { denied: 0 };
      }
      verdict.items?.forEach((it, i) => {
        if (!it.ok) status[i] = PATCH_STATUS.DENIED;
      });
      if (!verdict.items) status.fill(PATCH_STATUS.DENIED);
      writeStatus(mem, batchAt, status);
      return { denied: verdict.items ? verdict.items.filter((i) => !i.ok).length : n };
    },
    apply: () => {
      // INVARIANT: applied only when every site is known (an unknown one refuses above).
      for (let i = 0; i < n; i++) {
        const f = at[i] as Gfn;
        const len = records.len(i);
        const r = i * PATCH_RECORD + PR.NEW;
        const nf = next[i];
        const first = nf === undefined ? len : PAGE - (atOff[i] as number);
        mem.copyIn(f, atOff[i] as number, records.bytes, r, first);
        if (nf !== undefined) mem.copyIn(nf, 0, records.bytes, r + first, len - first);
      }
      status.fill(PATCH_STATUS.APPLIED);
      writeStatus(mem, batchAt, status);
      return { kind: 'applied', audit: { patches: n } };
    },
  });
};

/** Writes each entry's status byte back into the guest's batch. */
function writeStatus(mem: GuestMemory, batch: GuestPhysAddr, status: Uint8Array): void {
  mem.writeStrided(gpaAdd(batch, PATCH_BATCH_HEADER + ENTRY_STATUS), PATCH_ENTRY, status);
}

/** `38252 ftrace, 3 jump-label`: the kinds in order of first appearance, with counts. */
function summary(records: PatchRecords): string {
  const counts = new Map<string, number>();
  for (let i = 0; i < records.count; i++) {
    const k = PATCH_KIND_NAMES[records.kindCode(i)] as string;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, c]) => `${c} ${k}`).join(', ');
}
