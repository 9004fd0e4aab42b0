/**
 * The page-walk case grid of kvm-unit-tests' x86/access.c, against an oracle written from
 * the SDM (test/helpers/mmu-oracle.ts). access.c enumerates PTE and PDE bits (P, RW, US, A,
 * D, NX, reserved bits 51 and 36, bit 13 of a 2 MiB PDE, a read-only PDPTE) x CR0.WP x
 * CR4.SMEP x EFER.NXE x read/write/fetch x user/supervisor, and checks the outcome (allowed
 * or #PF with its error code) and the A/D bits left in the entries; it also accesses twice
 * (a read first, then the access, through the TLB). Here the same grid for 4 KiB, 2 MiB and
 * 1 GiB pages, with CR4.SMAP and EFLAGS.AC added (access.c's PKU is not modelled), and with
 * the EPT: the target frame's R/W/X-supervisor/X-user bits (MBEC) and page-table frames the
 * EPT does not let the walk write (an A/D update is then an EPT violation, pageWalk).
 *
 * Every case compares the outcome, the #PF error code, the exit's gpa/access/pageWalk and the
 * entries' values afterwards. Reserved bits are one at a time, as in access.c (a reserved-bit
 * fault is terminal; several reserved bits do not change the error code).
 *
 * This grid fails when one rule is broken. While writing it, each of these rules was broken
 * on purpose in the MMU, one at a time, the grid run (it failed every time, on the case in
 * parentheses), and the rule restored: I/D set on every fetch fault (a kernel fetch from a
 * non-present page with SMEP and NXE off), bits 20:13 of a 2 MiB PDE not checked (bit 13 set:
 * allowed instead of #PF RSVD), the MBEC X bit chosen by CPL (a CPL 0 fetch of a user page
 * allowed by X-supervisor alone), no TLB invalidation on #PF (the retry after the fix faulted
 * again), no dirty flag on a write, CR0.WP ignored, MAXPHYADDR taken as 52, SMAP not lifted by
 * EFLAGS.AC, and no accessed flag on the non-leaf entries of a walk.
 */
import { gpa } from '../../shared/addr.ts';
import test from 'ava';
import { oracle, type OracleAccess, type OracleEnv } from '../helpers/mmu-oracle.ts';
import { B, GridMachine, TARGET_GPA, buildWalk, describeCase, sameOutcome, subsets, type PageSize } from '../helpers/mmu-grid.ts';
import { EPT_DEFAULT, EPT_R, EPT_W, EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';
import type { AccessKind } from '../../shared/guest-cpu.ts';

const SIZES: readonly PageSize[] = ['4k', '2m', '1g'];
const ACCESSES: readonly OracleAccess[] = (['read', 'write', 'fetch'] as AccessKind[]).flatMap((kind) => [false, true].map((user) => ({ kind, user })));
/** CR0.WP x CR4.SMEP x EFER.NXE x (SMAP off | SMAP on with AC 0 | SMAP on with AC 1). */
const ENVS: readonly Omit<OracleEnv, 'targetEpt' | 'tablesWritable'>[] = [false, true].flatMap((wp) =>
  [false, true].flatMap((smep) =>
    [false, true].flatMap((nxe) =>
      [
        [false, false],
        [true, false],
        [true, true],
      ].map(([smap, ac]) => ({ wp, smep, nxe, smap: smap!, ac: ac!, physBits: 40 })),
    ),
  ),
);
const UPPER = B.P | B.RW | B.US | B.A;

/** Runs every case of `cases` and fails with the first few mismatches, each described. */
function runGrid(
  t: import('ava').ExecutionContext,
  cases: Iterable<{ size: PageSize; flags: bigint[]; env: OracleEnv; first?: OracleAccess; access: OracleAccess; retry?: boolean }>,
): number {
  const m = new GridMachine();
  const failures: string[] = [];
  let n = 0;
  for (const c of cases) {
    n++;
    const entries = buildWalk(c.size, c.flags);
    m.setup(entries, c.env, c.first ? c.first.user : c.access.user);
    let start = entries;
    if (c.first) {
      // access.c's "twice": a supervisor read first (through the same TLB), then the access.
      const pre = oracle(entries, TARGET_GPA, c.env, c.first);
      m.access(c.first);
      start = entries.map((e, i) => ({ gpa: e.gpa, value: pre.after[i]! }));
      if (c.access.user) m.cpu.setCpl(3);
    }
    const want = oracle(start, TARGET_GPA, c.env, c.access);
    const got = m.access(c.access);
    const after = m.values(entries);
    const sameAfter = after.every((v, i) => v === want.after[i]);
    if ((!sameOutcome(got, want.outcome) || !sameAfter) && failures.length < 5) {
      failures.push(
        `${describeCase(c.size, entries, c.env, c.access)}${c.first ? ' (twice)' : ''}: got ${JSON.stringify(got, big)} entries ${after.map((v) => v.toString(16)).join('/')}, want ${JSON.stringify(want.outcome, big)} entries ${want.after.map((v) => v.toString(16)).join('/')}`,
      );
    }
    if (c.retry && got.kind === 'pf') {
      // The OS fixes the entries (every right, no reserved bit) without invlpg and retries:
      // the #PF dropped the address's TLB entry, so the retry walks the new tables.
      const fixed = buildWalk(c.size, walkFlags(c.size, B.P | B.RW | B.US | B.A | B.D, UPPER, false));
      for (const e of fixed) m.core.memory.writeU64(gpa(e.gpa), e.value);
      const again = oracle(fixed, TARGET_GPA, c.env, c.access);
      const retried = m.access(c.access);
      if (!sameOutcome(retried, again.outcome) && failures.length < 5) {
        failures.push(
          `${describeCase(c.size, entries, c.env, c.access)} retried after the fix without invlpg: got ${JSON.stringify(retried, big)}, want ${JSON.stringify(again.outcome, big)}`,
        );
      }
    }
  }
  t.deepEqual(failures, [], `${failures.length} of ${n} cases differ from the SDM oracle`);
  return n;
}

function big(_k: string, v: unknown): unknown {
  return typeof v === 'bigint' ? `0x${v.toString(16)}` : v;
}

/** The walk's flag bits: the leaf, its parent and a grand-parent RW choice; other entries UPPER. */
function walkFlags(size: PageSize, leaf: bigint, parent: bigint, upperRo: boolean, top: bigint = UPPER): bigint[] {
  const n = size === '4k' ? 4 : size === '2m' ? 3 : 2;
  const f = new Array<bigint>(n).fill(UPPER);
  f[n - 1] = leaf;
  f[n - 2] = parent;
  // access.c's pdpte.ro: the entry above the parent loses RW (for 1 GiB there is none: the PML4E is the parent).
  if (n >= 3) f[n - 3] = upperRo ? UPPER & ~B.RW : UPPER;
  if (n === 4) f[0] = top;
  return f;
}

/**
 * Leaf (or parent) flag sets: every combination of `bits` with P = 1 and the accessed/dirty
 * state none, A, or A+D, and one not-present entry (the other bits of a not-present entry do
 * not matter: SDM 4.5.4, the walk stops there).
 */
function presentSets(bits: readonly bigint[], ad: readonly bigint[]): bigint[] {
  return [0n, ...subsets(bits).flatMap((b) => ad.map((x) => b | x | B.P))];
}

/** CR0.WP x EFER.NXE x (SMEP, SMAP, AC all off | all on): SMEP and SMAP do not apply at CPL 3. */
const USER_ENVS = ENVS.filter((e) => e.smep === e.smap && e.smap === e.ac);

test('access rights and #PF error codes: leaf and parent bits x WP x SMEP x SMAP x AC x NXE x access, 4K/2M/1G', (t) => {
  const leafBits = presentSets([B.RW, B.US, B.XD], [0n, B.A, B.A | B.D]);
  const parentBits = presentSets([B.RW, B.US, B.XD], [B.A]);
  function* cases() {
    for (const size of SIZES) {
      for (const parent of parentBits) {
        for (const leaf of parent === 0n ? [B.P | B.RW | B.US | B.A] : leafBits) {
          for (const upperRo of size === '4k' ? [false, true] : [false]) {
            for (const access of ACCESSES) {
              for (const e of access.user ? USER_ENVS : ENVS) {
                // With NXE = 0 the XD bit is reserved: one reserved bit at a time (access.c's rule).
                if (!e.nxe && (leaf & B.XD) !== 0n && (parent & B.XD) !== 0n) continue;
                const env = { ...e, targetEpt: EPT_DEFAULT, tablesWritable: true };
                yield { size, flags: walkFlags(size, leaf, parent, upperRo), env, access };
              }
            }
          }
        }
      }
    }
  }
  const n = runGrid(t, cases());
  t.true(n > 50_000, `${n} cases`);
});

test('reserved bits one at a time at every level: MAXPHYADDR..51, XD without NXE, PS in the PML4E, 20:13 of 2M, 29:13 of 1G', (t) => {
  const OK_LEAF = B.P | B.RW | B.US;
  function* cases() {
    for (const size of SIZES) {
      const n = size === '4k' ? 4 : size === '2m' ? 3 : 2;
      for (let level = 0; level < n; level++) {
        const leaf = level === n - 1;
        // Bits 40 and 51 are above MAXPHYADDR = 40; bits 52 and 62 are ignored (the control:
        // no fault); XD (reserved only without NXE); PS at the PML4E; the large-page low bits
        // (13 and 20 of a 2 MiB entry; 13, 21 and 29 of a 1 GiB entry).
        const candidates: bigint[] = [1n << 40n, 1n << 51n, 1n << 52n, 1n << 62n, B.XD];
        if (level === 0) candidates.push(B.PS);
        if (leaf && size === '2m') candidates.push(1n << 13n, 1n << 20n);
        if (leaf && size === '1g') candidates.push(1n << 13n, 1n << 21n, 1n << 29n);
        for (const bit of candidates) {
          for (const e of ENVS) {
            if (e.wp || e.smap) continue; // reserved-bit faults do not depend on them
            const env = { ...e, targetEpt: EPT_DEFAULT, tablesWritable: true };
            const flags = walkFlags(size, OK_LEAF, UPPER, false);
            flags[level] = flags[level]! | bit;
            for (const access of ACCESSES) yield { size, flags, env, access };
          }
        }
      }
    }
  }
  t.true(runGrid(t, cases()) > 1000);
});

test('the EPT: MBEC picks X-user or X-supervisor by the address U/S, R and W of the frame, and A/D updates to page tables the EPT write-protects', (t) => {
  const targets = subsets([BigInt(EPT_R), BigInt(EPT_W), BigInt(EPT_XS), BigInt(EPT_XU)]).map(Number);
  const leafBits = subsets([B.RW, B.US]).flatMap((l) => [l | B.P, l | B.P | B.A | B.D]);
  function* cases() {
    for (const size of SIZES) {
      for (const leaf of leafBits) {
        for (const parentUser of [false, true]) {
          for (const targetEpt of targets) {
            for (const tablesWritable of [true, false]) {
              // SMEP and SMAP off: a CPL 0 fetch from a user page reaches the EPT's X-user check.
              const env = { wp: true, smep: false, smap: false, ac: false, nxe: true, physBits: 40, targetEpt, tablesWritable };
              const parent = parentUser ? UPPER : UPPER & ~B.US;
              for (const access of ACCESSES) yield { size, flags: walkFlags(size, leaf, parent, false), env, access };
            }
          }
        }
      }
    }
  }
  t.true(runGrid(t, cases()) > 5_000);
});

test('twice (access.c): a supervisor read fills the TLB and sets A, then the access (a write through a clean entry walks again to set D); after a #PF the fixed entries work without invlpg', (t) => {
  const leafBits = presentSets([B.RW, B.US, B.A, B.D], [0n]);
  const parentBits = subsets([B.RW, B.US, B.A]).map((p) => p | B.P);
  const first: OracleAccess = { kind: 'read', user: false };
  // SMEP off, SMAP off or lifted by AC: the first (supervisor) read is allowed on every page.
  const envs = ENVS.filter((e) => !e.smep && e.smap === e.ac);
  function* cases() {
    for (const size of SIZES) {
      for (const leaf of leafBits) {
        for (const parent of parentBits) {
          for (const e of envs) {
            for (const tablesWritable of [true, false]) {
              const env = { ...e, targetEpt: EPT_DEFAULT, tablesWritable };
              for (const access of ACCESSES) yield { size, flags: walkFlags(size, leaf, parent, false), env, first, access, retry: true };
            }
          }
        }
      }
    }
  }
  t.true(runGrid(t, cases()) > 10_000);
});
