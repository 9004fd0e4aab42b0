/**
 * Which table owns a text address: for naming the site and the table when a predicted byte
 * and the real one differ (the verifier's denials, `heki reference check`).
 */
import { TOUCHUP_TABLE_SECTION, type TouchupTable, type TouchupTables } from './tables.ts';

/** A site of a table. */
export interface OwnedSite {
  readonly table: TouchupTable;
  readonly site: bigint;
  readonly len: number;
}

/** Sites of every table and of ftrace, jump labels and static call trampolines, by address. */
export class SiteOwners {
  private readonly sites: OwnedSite[] = [];

  constructor(
    tables: TouchupTables,
    extras: {
      readonly mcountSites?: readonly bigint[];
      readonly jumpSites?: readonly { site: bigint; len: number }[];
      readonly trampolines?: readonly bigint[];
    } = {},
  ) {
    const add = (table: TouchupTable, site: bigint, len: number): void => void this.sites.push({ table, site, len });
    for (const p of tables.paravirt) add('paravirt', p.addr, p.len);
    for (const a of tables.retpolines) add('retpoline', a, 6);
    for (const a of tables.returns) add('return', a, 5);
    for (const a of tables.alternatives) add('alternative', a.instr, Math.max(a.instrlen, a.replacementlen));
    for (const a of tables.smpLocks) add('smp-lock', a, 1);
    for (const s of tables.staticCalls) add('static-call', s.site, 5);
    for (const t of extras.trampolines ?? []) add('static-call', t, 8);
    for (const m of extras.mcountSites ?? []) add('ftrace', m, 5);
    for (const j of extras.jumpSites ?? []) add('jump-label', j.site, j.len);
    this.sites.sort((a, b) => (a.site < b.site ? -1 : a.site > b.site ? 1 : 0));
  }

  /** The sites covering `addr` (innermost last), empty when none does. */
  at(addr: bigint): OwnedSite[] {
    let lo = 0;
    let hi = this.sites.length - 1;
    let best = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (this.sites[mid]!.site <= addr) {
        best = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    const out: OwnedSite[] = [];
    // Sites are at most 255 bytes long; look back over the few that start before `addr`.
    for (let i = best; i >= 0 && addr - this.sites[i]!.site < 256n; i--) {
      const s = this.sites[i]!;
      if (addr < s.site + BigInt(s.len)) out.push(s);
    }
    return out.reverse();
  }

  /** `"alternative site 0xffffffff81001234 (.altinstructions)"` (each site once), or `"no touch-up site"`. */
  describe(addr: bigint): string {
    const owners = this.at(addr);
    if (owners.length === 0) return 'no touch-up site';
    // Several entries of one table may share a site (ALTERNATIVE_2's two entries): named once.
    return [...new Set(owners.map((o) => `${o.table} site 0x${o.site.toString(16)} (${TOUCHUP_TABLE_SECTION[o.table]})`))].join(', ');
  }
}
