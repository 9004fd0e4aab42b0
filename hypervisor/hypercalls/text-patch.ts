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
import { isRetryable, type PatchItem } from '../../shared/protocol.ts';
import type { HypercallHandler } from './context.ts';
import { readPatchBatch } from './descriptors.ts';
import { verificationDenied } from './verification-outcome.ts';

const PAGE = 4096n;

export const textPatch: HypercallHandler = async (ctx, [a0]) => {
  const { core } = ctx;
  const auth = core.auth;
  if (!auth) return -KVM_STATUS.KVM_EOPNOTSUPP;
  const batch = readPatchBatch(core.memory, a0);
  if (!batch.ok) return -KVM_STATUS.KVM_EINVAL;
  const entries = batch.value;
  const status = new Uint8Array(entries.length).fill(PATCH_STATUS.NOT_APPLIED);
  // Where each byte of each site lives, by the core's own records.
  const where: Array<bigint[] | undefined> = entries.map((e) => {
    const addrs: bigint[] = [];
    for (let i = 0; i < e.oldBytes.length; i++) {
      const va = e.site + BigInt(i);
      const f = auth.codeFrame(va);
      if (f === undefined) return undefined;
      addrs.push(BigInt(f) * PAGE + (va & (PAGE - 1n)));
    }
    return addrs;
  });
  const unknown = where.findIndex((w) => w === undefined);
  const frames = new Set<number>();
  for (const w of where) if (w) for (const a of w) frames.add(Number(a >> 12n));
  const frozen = auth.freeze(frames);
  try {
    const items: PatchItem[] = entries.map((e, i) => ({
      kind: e.kind,
      site: e.site,
      oldBytes: e.oldBytes,
      newBytes: e.newBytes,
      currentBytes: where[i] ? Uint8Array.from(where[i]!, (a) => core.memory.read(a, 1)[0] as number) : new Uint8Array(e.oldBytes.length),
    }));
    const subject = `${entries.length} patches (${summary(entries.map((e) => e.kind))})`;
    if (unknown >= 0) {
      // The core refuses on its own: it does not know this site as verified code.
      status[unknown] = PATCH_STATUS.DENIED;
      writeStatus(core.memory, a0, status);
      const reason = `site 0x${entries[unknown]!.site.toString(16)} is not in verified kernel or module text`;
      const verdict = { v: 1, id: -1, ok: false, reason, plugins: ['core'] };
      auth.record('text-patch', subject, verdict, { applied: false, denied: 1 });
      return verificationDenied(ctx, 'text-patch', subject, verdict);
    }
    const verdict = await auth.verify({ kind: 'text-patch', vm: auth.vm, items });
    const deniedCount = isRetryable(verdict) ? 0 : verdict.items ? verdict.items.filter((i) => !i.ok).length : entries.length;
    if (!verdict.ok) {
      // A retryable refusal decided nothing: every entry stays "not applied".
      if (!isRetryable(verdict)) {
        verdict.items?.forEach((it, i) => {
          if (!it.ok) status[i] = PATCH_STATUS.DENIED;
        });
        if (!verdict.items) status.fill(PATCH_STATUS.DENIED);
      }
      writeStatus(core.memory, a0, status);
      auth.record('text-patch', subject, verdict, { applied: false, denied: deniedCount });
      return verificationDenied(ctx, 'text-patch', subject, verdict);
    }
    entries.forEach((e, i) => {
      const addrs = where[i]!;
      for (let b = 0; b < addrs.length; b++) core.memory.write(addrs[b]!, e.newBytes.subarray(b, b + 1));
    });
    status.fill(PATCH_STATUS.APPLIED);
    writeStatus(core.memory, a0, status);
    auth.record('text-patch', subject, verdict, { applied: true, patches: entries.length });
    return 0;
  } finally {
    auth.thaw(frozen);
  }
};

function writeStatus(mem: { write(a: bigint, b: Uint8Array): void }, batch: bigint, status: Uint8Array): void {
  for (let i = 0; i < status.length; i++) mem.write(batch + BigInt(PATCH_BATCH_HEADER + i * PATCH_ENTRY + 10), status.subarray(i, i + 1));
}

function summary(kinds: string[]): string {
  const counts = new Map<string, number>();
  for (const k of kinds) counts.set(k, (counts.get(k) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${n} ${k}`).join(', ');
}
