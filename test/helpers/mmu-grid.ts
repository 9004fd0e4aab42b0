/**
 * A bare vCPU for page-walk tests: a VmCore with 8 MiB of RAM whose exits are recorded and
 * answered `inject`, page tables written directly at fixed frames, and one access run
 * against them. No kernel boots: a case costs a few microseconds.
 *
 * Layout: PML4 at 0x1000, PDPT at 0x2000, PD at 0x3000, PT at 0x4000; every walk reaches
 * the frame at 0x200000 ({@link TARGET_GPA}) through {@link GRID_VA} (a 1 GiB page at 0, a
 * 2 MiB page at 0x200000 or a 4 KiB page at 0x200000).
 */
import { gpa, gva, gpaToGfn } from '../../shared/addr.ts';
import { VmCore } from '../../hypervisor/core/vm-core.ts';
import type { VmExit } from '../../hypervisor/exits/exit.ts';
import { EPT_DEFAULT, EPT_R } from '../../hypervisor/ept/permissions.ts';
import { CR0, CR4, EFER, PTE } from '../../shared/x86/cpu.ts';
import type { GuestOutcome } from '../../shared/guest-cpu.ts';
import type { OracleAccess, OracleEntry, OracleEnv, OracleOutcome } from './mmu-oracle.ts';

/** The linear address every grid walk translates (canonical, user half). */
export const GRID_VA = 0x0000_7f80_0020_0000n;
/** The guest-physical address it reaches. */
export const TARGET_GPA = 0x20_0000n;
/** Frames of the four tables (PML4, PDPT, PD, PT). */
export const TABLES = [0x1000n, 0x2000n, 0x3000n, 0x4000n] as const;

/** Page sizes by the level of their leaf. */
export type PageSize = '4k' | '2m' | '1g';

/** Entry bits (XD is PTE.NX). */
export const B = { ...PTE, XD: PTE.NX } as const;

/** The walk for `size` with the given flag bits, PML4E first (addresses filled in). */
export function buildWalk(size: PageSize, flags: readonly bigint[]): OracleEntry[] {
  const n = size === '4k' ? 4 : size === '2m' ? 3 : 2;
  if (flags.length !== n) throw new Error(`a ${size} walk has ${n} entries, got ${flags.length}`);
  const out: OracleEntry[] = [];
  for (let i = 0; i < n; i++) {
    const level = 4 - i;
    const gpa = TABLES[i]! + ((GRID_VA >> BigInt(3 + 9 * level)) & 0x1ffn) * 8n;
    const leaf = i === n - 1;
    const addr = !leaf ? TABLES[i + 1]! : size === '1g' ? 0n : TARGET_GPA;
    out.push({ gpa, value: addr | flags[i]! | (leaf && size !== '4k' ? B.PS : 0n) });
  }
  return out;
}

/** The grid's machine. */
export class GridMachine {
  readonly core: VmCore;
  lastExit: VmExit | undefined;
  exits = 0;
  #tablesEpt = EPT_DEFAULT;

  constructor(physBits?: number) {
    this.core = new VmCore(
      { memoryBytes: 8n << 20n, vcpus: 1, ...(physBits !== undefined ? { physBits } : {}) },
      {
        handleExit: (e) => {
          this.lastExit = e;
          this.exits++;
          return { action: 'inject' };
        },
      },
    );
  }

  get cpu(): VmCore['vcpus'][number] {
    return this.core.vcpus[0]!;
  }

  /** Loads the registers and EPT of `env` (this flushes the TLB) and writes the walk. */
  setup(entries: readonly OracleEntry[], env: OracleEnv, user: boolean): void {
    // Every walk goes through the same slots (one GRID_VA), so writing them is enough: a slot
    // a shorter walk does not reach is never read.
    const mem = this.core.memory;
    for (const e of entries) mem.writeU64(gpa(e.gpa), e.value);
    const tables = env.tablesWritable ? EPT_DEFAULT : EPT_R;
    if (this.#tablesEpt !== tables) for (const t of TABLES) this.core.ept.set(gpaToGfn(gpa(t)), tables);
    this.#tablesEpt = tables;
    this.core.ept.set(gpaToGfn(gpa(TARGET_GPA)), env.targetEpt);
    const r = this.cpu.setStateByVmm({
      cr0: CR0.PE | CR0.PG | CR0.ET | CR0.NE | (env.wp ? CR0.WP : 0n),
      cr3: TABLES[0],
      cr4: CR4.PAE | CR4.PGE | (env.smep ? CR4.SMEP : 0n) | (env.smap ? CR4.SMAP : 0n),
      efer: EFER.LME | EFER.SCE | (env.nxe ? EFER.NXE : 0n),
      cpl: user ? 3 : 0,
    });
    if (!r.ok) throw new Error('setStateByVmm refused the grid registers');
    this.cpu.setAc(env.ac);
    this.lastExit = undefined;
  }

  /** Runs one access and says what happened, in the oracle's terms. */
  access(a: OracleAccess): OracleOutcome {
    const before = this.exits;
    let r: GuestOutcome<unknown>;
    if (a.kind === 'read') r = this.cpu.read(gva(GRID_VA), 1);
    else if (a.kind === 'write') r = this.cpu.write(gva(GRID_VA), Uint8Array.of(0x90));
    else r = this.cpu.fetch(gva(GRID_VA), 1);
    if (r.ok) return { kind: 'ok' };
    const f = r.fault;
    if (f.kind !== 'fault' || f.vector !== 'PF')
      throw new Error(`unexpected fault ${JSON.stringify(f, (_k, v) => (typeof v === 'bigint' ? v.toString(16) : v))}`);
    if (this.exits === before) return { kind: 'pf', code: f.errorCode };
    const x = this.lastExit;
    if (x?.reason !== 'ept-violation') throw new Error(`a #PF after a ${x?.reason} exit`);
    return { kind: 'ept', gpa: x.gpa, access: x.access, pageWalk: x.pageWalk, code: f.errorCode };
  }

  /** The walk's entries as they are in guest memory now. */
  values(entries: readonly OracleEntry[]): bigint[] {
    return entries.map((e) => this.core.memory.readU64(gpa(e.gpa)));
  }
}

/** Every subset of `flags`, as OR-ed values. */
export function subsets(flags: readonly bigint[]): bigint[] {
  const out: bigint[] = [];
  for (let m = 0; m < 1 << flags.length; m++) {
    let v = 0n;
    for (let i = 0; i < flags.length; i++) if (m & (1 << i)) v |= flags[i]!;
    out.push(v);
  }
  return out;
}

/** True when two outcomes are the same (kind, error code, and the exit's gpa, access and pageWalk). */
export function sameOutcome(a: OracleOutcome, b: OracleOutcome): boolean {
  if (a.kind !== b.kind) return false;
  if (a.kind === 'ok') return true;
  if (a.code !== (b as { code: number }).code) return false;
  if (a.kind === 'pf') return true;
  const x = b as Extract<OracleOutcome, { kind: 'ept' }>;
  return a.gpa === x.gpa && a.access === x.access && a.pageWalk === x.pageWalk;
}

/** One case in a line, for a failure message. */
export function describeCase(size: PageSize, entries: readonly OracleEntry[], env: OracleEnv, a: OracleAccess): string {
  const e = entries.map((x) => x.value.toString(16)).join('/');
  const on = (['wp', 'smep', 'smap', 'ac', 'nxe'] as const).filter((k) => env[k]).join(',');
  return `${size} entries ${e} [${on}] ept ${env.targetEpt.toString(2)}${env.tablesWritable ? '' : ' tables-ro'} ${a.user ? 'user' : 'kernel'} ${a.kind}`;
}
