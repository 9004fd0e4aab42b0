/**
 * The page list of `KVM_HC_PROTECT_MEMORY`, laid out like Heki v2's `struct heki_page_list`
 * (include/linux/heki.h):
 *
 * ```c
 * struct heki_pages     { gpa_t pa; gpa_t epa; unsigned long permissions; };   // 24 bytes
 * struct heki_page_list { struct heki_page_list *next; gpa_t next_pa;
 *                         unsigned long npages; struct heki_pages pages[]; };  // 24-byte header
 * ```
 *
 * One list occupies one guest page; lists chain through `next_pa` (0 ends the chain). `next`
 * is the guest's own virtual pointer and means nothing to the host. `[pa, epa)` is a
 * page-aligned guest-physical range. The guest writes lists with {@link encodePageList};
 * the core reads them with its own bounded walker (hypervisor/hypercalls/page-list-reader.ts).
 */
import { PAGE_SIZE } from './addr.ts';

/** Bytes of the list header: next, next_pa, npages. */
export const PAGE_LIST_HEADER_SIZE = 24;
/** Bytes of one `heki_pages` entry: pa, epa, permissions. */
export const PAGE_LIST_ENTRY_SIZE = 24;
/** Entries that fit in one page: (4096 - 24) / 24 = 169. More is an oversized list. */
export const PAGE_LIST_MAX_ENTRIES = Math.floor((PAGE_SIZE - PAGE_LIST_HEADER_SIZE) / PAGE_LIST_ENTRY_SIZE);
/** Longest chain of list pages the core follows; a longer one is refused as -KVM_EINVAL. */
export const PAGE_LIST_MAX_PAGES = 4096;

/** One range and the attributes to give it. */
export interface PageRange {
  /** First byte, page-aligned guest-physical address. */
  readonly pa: bigint;
  /** One past the last byte, page-aligned, greater than `pa`. */
  readonly epa: bigint;
  /** MEM_ATTR bits. */
  readonly permissions: number;
}

/**
 * Encodes one list page (4096 bytes). Throws if more than {@link PAGE_LIST_MAX_ENTRIES}
 * entries are given: that is a bug in the caller, which must split its ranges over pages.
 */
export function encodePageList(entries: readonly PageRange[], nextPa: bigint, nextVa = 0n): Uint8Array {
  if (entries.length > PAGE_LIST_MAX_ENTRIES) {
    throw new RangeError(`a page list holds at most ${PAGE_LIST_MAX_ENTRIES} entries, got ${entries.length}`);
  }
  const page = new Uint8Array(PAGE_SIZE);
  const dv = new DataView(page.buffer);
  dv.setBigUint64(0, nextVa, true);
  dv.setBigUint64(8, nextPa, true);
  dv.setBigUint64(16, BigInt(entries.length), true);
  entries.forEach((e, i) => {
    const off = PAGE_LIST_HEADER_SIZE + i * PAGE_LIST_ENTRY_SIZE;
    dv.setBigUint64(off, e.pa, true);
    dv.setBigUint64(off + 8, e.epa, true);
    dv.setBigUint64(off + 16, BigInt(e.permissions), true);
  });
  return page;
}

/** Splits ranges into chunks that each fit one list page. */
export function chunkPageRanges(ranges: readonly PageRange[]): PageRange[][] {
  const out: PageRange[][] = [];
  for (let i = 0; i < ranges.length; i += PAGE_LIST_MAX_ENTRIES) out.push(ranges.slice(i, i + PAGE_LIST_MAX_ENTRIES));
  return out;
}
