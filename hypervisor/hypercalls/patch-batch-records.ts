/**
 * Reads a guest text-patch batch (shared/heki-descriptors.ts) straight into verification
 * records (shared/ring/patch-records.ts): one copy of the batch out of guest memory, then one
 * fixed-size record per entry and no object per entry. The checks and their messages are
 * those of descriptors.ts `readPatchBatch`. TRUST: the batch is guest memory; every count
 * and length is checked before it is used.
 */
import { hex, type GuestPhysAddr } from '../../shared/addr.ts';
import { guestRange } from './descriptors.ts';
import { PATCH_BATCH_HEADER, PATCH_BATCH_MAGIC, PATCH_BATCH_MAX, PATCH_ENTRY } from '../../shared/heki-descriptors.ts';
import { PATCH_RECORD, PR } from '../../shared/ring/layout.ts';
import { PATCH_KIND_NAMES, PatchRecords } from '../../shared/ring/patch-records.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import type { GuestMemoryAccess } from '../memory/guest-memory.ts';

/** Byte offsets inside a batch entry: site u64, len u8, kind u8, status u8, pad, old[8], new[8]. */
const ENTRY_LEN = 8;
const ENTRY_KIND = 9;
const ENTRY_OLD = 16;
const ENTRY_NEW = 24;

/**
 * The batch at `gpa` (a hypercall argument) as records (current bytes zero: the core fills
 * them in after freezing), with the batch's validated address.
 */
export function readPatchBatchRecords(mem: GuestMemoryAccess, gpa: bigint): Result<{ readonly at: GuestPhysAddr; readonly records: PatchRecords }, string> {
  const at = guestRange(mem, gpa, PATCH_BATCH_HEADER, 8n);
  if (at === undefined) return err(`patch batch at ${hex(gpa)} is unaligned or outside guest memory`);
  const head = new DataView(mem.read(at, PATCH_BATCH_HEADER).buffer);
  if (head.getBigUint64(0, true) !== PATCH_BATCH_MAGIC) return err('patch batch has a bad magic');
  const count = head.getBigUint64(8, true);
  if (count === 0n || count > BigInt(PATCH_BATCH_MAX)) return err(`patch batch claims ${count} patches; 1..${PATCH_BATCH_MAX} allowed`);
  const n = Number(count);
  const bytes = PATCH_BATCH_HEADER + n * PATCH_ENTRY;
  if (!mem.contains(at, bytes)) return err(`patch batch of ${count} entries runs past the end of guest memory`);
  const all = mem.read(at, bytes);
  // The guest's batch is little-endian (the x86 ABI); records are in host order.
  const dv = new DataView(all.buffer, all.byteOffset, all.length);
  const records = PatchRecords.alloc(n);
  const out = records.bytes;
  for (let i = 0; i < n; i++) {
    const o = PATCH_BATCH_HEADER + i * PATCH_ENTRY;
    const len = all[o + ENTRY_LEN] as number;
    const kind = all[o + ENTRY_KIND] as number;
    if (len < 1 || len > 8) return err(`patch ${i}: length ${len} is not 1..8`);
    if (kind >= PATCH_KIND_NAMES.length) return err(`patch ${i}: unknown kind code ${kind}`);
    records.setSite(i, dv.getUint32(o, true), dv.getUint32(o + 4, true));
    const r = i * PATCH_RECORD;
    out[r + PR.KIND] = kind;
    out[r + PR.LEN] = len;
    for (let k = 0; k < len; k++) {
      out[r + PR.OLD + k] = all[o + ENTRY_OLD + k] as number;
      out[r + PR.NEW + k] = all[o + ENTRY_NEW + k] as number;
    }
  }
  return ok({ at, records });
}
