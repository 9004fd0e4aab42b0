/**
 * SiteOwners (shared/x86/touchups/site-owner.ts), which the verifier's kernel-text denials and
 * `heki reference check` name sites with: every table covering an address is named, each site
 * once even when several entries of one table share it (ALTERNATIVE_2 makes two
 * `.altinstructions` entries for one site).
 */
import test from 'ava';
import { SiteOwners } from '../../shared/x86/touchups/site-owner.ts';
import type { TouchupTables } from '../../shared/x86/touchups/tables.ts';

const site = 0xffffffff81001000n;
const alt = (cpuid: number) => ({ entry: 0xffffffff82000000n, instr: site, repl: 0xffffffff83000000n, cpuid, instrlen: 5, replacementlen: 5 });
const tables: TouchupTables = {
  paravirt: [],
  retpolines: [],
  returns: [site + 1n],
  alternatives: [alt(11 * 32 + 14), alt(11 * 32 + 15)],
  smpLocks: [],
  staticCalls: [],
};

test('two alternative entries at one site name it once; another table covering the byte is named too', (t) => {
  const owners = new SiteOwners(tables);
  t.is(owners.describe(site), 'alternative site 0xffffffff81001000 (.altinstructions)');
  t.is(owners.describe(site + 1n), 'alternative site 0xffffffff81001000 (.altinstructions), return site 0xffffffff81001001 (.return_sites)');
  t.is(owners.at(site).length, 2, 'both entries are still owners');
  t.is(owners.describe(site + 0x100n), 'no touch-up site');
});
