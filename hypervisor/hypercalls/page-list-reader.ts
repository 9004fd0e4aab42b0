/**
 * Reads a `heki_page_list` chain (shared/page-list.ts) out of guest memory, validating all
 * of it before anything is applied.
 *
 * TRUST: the list is guest memory, written by a guest that may be hostile. The reader is
 * bounded: at most PAGE_LIST_MAX_PAGES list pages, each visited once (a chain that loops is
 * refused), at most PAGE_LIST_MAX_ENTRIES entries per page, every address checked against
 * guest memory before use. It allocates nothing sized by an unchecked count.
 */
import { PAGE_SIZE, hex, isAddrError, tryGpa } from '../../shared/addr.ts';
import { MEM_ATTR_MASK } from '../../shared/abi.ts';
import { PAGE_LIST_ENTRY_SIZE, PAGE_LIST_HEADER_SIZE, PAGE_LIST_MAX_ENTRIES, PAGE_LIST_MAX_PAGES, type PageRange } from '../../shared/page-list.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import type { GuestMemoryAccess } from '../memory/guest-memory.ts';

/** Why a page list was refused. Every kind maps to -KVM_EINVAL. */
export type PageListError =
  | { kind: 'unaligned-list'; gpa: bigint }
  | { kind: 'list-outside-memory'; gpa: bigint }
  | { kind: 'oversized-list'; gpa: bigint; npages: bigint }
  | { kind: 'loop'; gpa: bigint }
  | { kind: 'chain-too-long'; pages: number }
  | { kind: 'unaligned-range'; index: number; pa: bigint; epa: bigint }
  | { kind: 'empty-range'; index: number; pa: bigint; epa: bigint }
  | { kind: 'range-outside-memory'; index: number; pa: bigint; epa: bigint }
  | { kind: 'unknown-attributes'; index: number; bits: bigint };

/** A message naming the problem. */
export function pageListErrorMessage(e: PageListError): string {
  switch (e.kind) {
    case 'unaligned-list':
      return `page list at ${hex(e.gpa)} is not page-aligned`;
    case 'list-outside-memory':
      return `page list at ${hex(e.gpa)} is outside guest memory`;
    case 'oversized-list':
      return `page list at ${hex(e.gpa)} claims ${e.npages} entries; at most ${PAGE_LIST_MAX_ENTRIES} fit in a page`;
    case 'loop':
      return `page list chain loops back to ${hex(e.gpa)}`;
    case 'chain-too-long':
      return `page list chain is longer than ${e.pages} pages`;
    case 'unaligned-range':
      return `entry ${e.index}: range [${hex(e.pa)}, ${hex(e.epa)}) is not page-aligned`;
    case 'empty-range':
      return `entry ${e.index}: range [${hex(e.pa)}, ${hex(e.epa)}) is empty or reversed`;
    case 'range-outside-memory':
      return `entry ${e.index}: range [${hex(e.pa)}, ${hex(e.epa)}) is outside guest memory`;
    case 'unknown-attributes':
      return `entry ${e.index}: unknown attribute bits ${hex(e.bits)}`;
  }
}

/** Reads and validates the whole chain that starts at `head`. */
export function readPageList(memory: GuestMemoryAccess, head: bigint): Result<PageRange[], PageListError> {
  const ranges: PageRange[] = [];
  const seen = new Set<bigint>();
  let gpa = head;
  while (true) {
    if (gpa % BigInt(PAGE_SIZE) !== 0n) return err({ kind: 'unaligned-list', gpa });
    // TRUST: `gpa` is the guest's (a hypercall argument or a list's next pointer).
    const at = tryGpa(gpa);
    if (isAddrError(at) || !memory.contains(at, PAGE_SIZE)) return err({ kind: 'list-outside-memory', gpa });
    if (seen.has(gpa)) return err({ kind: 'loop', gpa });
    if (seen.size >= PAGE_LIST_MAX_PAGES) return err({ kind: 'chain-too-long', pages: PAGE_LIST_MAX_PAGES });
    seen.add(gpa);
    const page = memory.read(at, PAGE_SIZE);
    const dv = new DataView(page.buffer, page.byteOffset, page.byteLength);
    const nextPa = dv.getBigUint64(8, true);
    const npages = dv.getBigUint64(16, true);
    if (npages > BigInt(PAGE_LIST_MAX_ENTRIES)) return err({ kind: 'oversized-list', gpa, npages });
    for (let i = 0; i < Number(npages); i++) {
      const off = PAGE_LIST_HEADER_SIZE + i * PAGE_LIST_ENTRY_SIZE;
      const pa = dv.getBigUint64(off, true);
      const epa = dv.getBigUint64(off + 8, true);
      const perm = dv.getBigUint64(off + 16, true);
      const index = ranges.length;
      if (pa % BigInt(PAGE_SIZE) !== 0n || epa % BigInt(PAGE_SIZE) !== 0n) return err({ kind: 'unaligned-range', index, pa, epa });
      if (epa <= pa) return err({ kind: 'empty-range', index, pa, epa });
      if (epa > memory.size) return err({ kind: 'range-outside-memory', index, pa, epa });
      if ((perm & ~BigInt(MEM_ATTR_MASK)) !== 0n) return err({ kind: 'unknown-attributes', index, bits: perm & ~BigInt(MEM_ATTR_MASK) });
      ranges.push({ pa, epa, permissions: Number(perm) });
    }
    if (nextPa === 0n) return ok(ranges);
    gpa = nextPa;
  }
}
