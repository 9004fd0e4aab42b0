/**
 * Byte comparison of one section with a real boot's dump, for `heki reference check`: how
 * many bytes were compared and how many differ, and the first differing sites, each with the
 * table that owns it (shared/x86/touchups/site-owner.ts), so a difference names what should
 * have written it.
 */
import type { SiteOwners } from '../../shared/x86/touchups/site-owner.ts';

/** A differing site: its first differing byte and who owns it. */
export interface DifferingSite {
  /** `0x`-prefixed hex address of the first differing byte of the site. */
  readonly addr: string;
  /** `"alternative site 0x... (.altinstructions)"`, or `"no touch-up site"`. */
  readonly owner: string;
}

/** One compared section. */
export interface SectionComparison {
  readonly bytes: number;
  readonly differing: number;
  /** The first differing sites, in address order (a site counts once however many of its bytes differ). */
  readonly first: readonly DifferingSite[];
}

/** How many differing sites a comparison lists. */
export const FIRST_SITES = 10;

/**
 * Entry sizes of the tables a module's dumped sections may be (x86-64, Linux 6.1): a byte of
 * one is owned by its entry. `__mcount_loc` holds 8-byte addresses (sorted at load by
 * ftrace_process_locs()), `__jump_table` 16-byte `struct jump_entry` (sorted by
 * jump_label_sort_entries()), `.static_call_sites` 8-byte `struct static_call_site`,
 * `__bug_table` 12-byte `struct bug_entry` (relative pointers).
 */
export const TABLE_ENTRY_SIZE: Readonly<Record<string, number>> = Object.freeze({
  __mcount_loc: 8,
  __jump_table: 16,
  '.static_call_sites': 8,
  __bug_table: 12,
  '.altinstructions': 12,
  '.parainstructions': 16,
  '.retpoline_sites': 4,
  '.return_sites': 4,
  '.smp_locks': 4,
});

/** Who owns a byte: the innermost site and its range, for listing each site once. */
interface Owner {
  readonly text: string;
  /** The owner's range [start, end); undefined for a byte nothing owns. */
  readonly range: { readonly start: bigint; readonly end: bigint } | undefined;
}

/**
 * Compares `ours` with `real`, both the section `name` at `base`. A table section's bytes are
 * owned by its entries; any other section's by the sites of `owners`, which is built only when
 * something differs (the kernel's tables have some 80,000 sites). Bytes no site owns are
 * listed once per run of differing bytes.
 */
export function compareSection(
  name: string,
  base: bigint,
  ours: Uint8Array,
  real: Uint8Array,
  owners: () => SiteOwners,
  limit = FIRST_SITES,
): SectionComparison {
  if (ours.length !== real.length) throw new Error(`INVARIANT: compared ${ours.length} bytes with ${real.length}`);
  const entry = TABLE_ENTRY_SIZE[name];
  let o: SiteOwners | undefined;
  const ownerOf = (a: bigint): Owner => {
    if (entry !== undefined) {
      const i = (a - base) / BigInt(entry);
      const start = base + i * BigInt(entry);
      return { text: `${name} entry ${i} at 0x${start.toString(16)} (${entry}-byte entries)`, range: { start, end: start + BigInt(entry) } };
    }
    o ??= owners();
    const sites = o.at(a);
    const inner = sites[sites.length - 1];
    return { text: o.describe(a), range: inner && { start: inner.site, end: inner.site + BigInt(inner.len) } };
  };
  let differing = 0;
  const first: DifferingSite[] = [];
  let last: Owner | undefined;
  let prev = -2;
  for (let i = 0; i < real.length; i++) {
    if (ours[i] === real[i]) continue;
    differing++;
    const contiguous = prev === i - 1;
    prev = i;
    if (first.length >= limit) continue;
    const a = base + BigInt(i);
    if (last?.range ? a >= last.range.start && a < last.range.end : last && contiguous) continue;
    last = ownerOf(a);
    first.push({ addr: `0x${a.toString(16)}`, owner: last.text });
  }
  return { bytes: real.length, differing, first };
}
