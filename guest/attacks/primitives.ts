/**
 * Exploit primitives: what an attacker who owns the guest kernel does with it. Every one goes
 * through the guest's vCPU and the kernel's own structures: it reads and writes page-table
 * entries in guest memory (through the direct map, as the kernel does), maps frames at
 * addresses of its choosing without telling the kernel's Heki bookkeeping, takes frames from
 * the page allocator, and writes hypervisor descriptors into its own pages.
 *
 * A primitive that sets up an attack throws {@link AttackSetupError} when the setup itself
 * fails (no memory, an unmapped symbol): the runner reports that attack as not stopped with
 * the message, so a broken attack fails loudly instead of passing.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import type { GuestCpu, GuestFault, GuestOutcome } from '../../shared/guest-cpu.ts';
import { HC_NAMES, isHypercallNr, statusName } from '../../shared/abi.ts';
import { PTE, PTE_ADDR_MASK } from '../mm/page-table-writer.ts';
import { physToVirt } from '../kernel/layout.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';

/** An attack could not be set up (not a protection stopping it). */
export class AttackSetupError extends Error {
  override readonly name = 'AttackSetupError';
}

/**
 * The payload the attacks try to run or plant: `xor rax, rax; inc rax; ret` (return 1, as a
 * hooked permission check would), distinctive enough to recognise in a fetch.
 */
export const SHELLCODE: Readonly<Uint8Array> = Uint8Array.of(0x48, 0x31, 0xc0, 0x48, 0xff, 0xc0, 0xc3);

/** `0x...` for an address. */
export function hex(v: bigint | number): string {
  return `0x${v.toString(16)}`;
}

/** Bytes as hex pairs: `48 31 c0`. */
export function bytesHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(' ');
}

/** True when two byte arrays are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

/** A fault in a few words, for the `stop` column: `#PF (ept-violation) at 0x...`, `#GP (cr-pin)`. */
export function faultShort(f: GuestFault): string {
  if (f.kind === 'stopped') return `VM stopped: ${f.detail}`;
  return f.vector === 'PF' && f.address !== undefined ? `#PF (${f.cause}) at ${hex(f.address)}` : `#${f.vector} (${f.cause})`;
}

/** A fault with its full explanation, for the detail. */
export function faultLong(f: GuestFault): string {
  return f.kind === 'stopped' ? `VM stopped: ${f.detail}` : `#${f.vector} (${f.cause}): ${f.detail}`;
}

/** What an outcome was: `ok` or the short fault. */
export function outcomeText(r: GuestOutcome<unknown>): string {
  return r.ok ? 'succeeded' : faultLong(r.fault);
}

/** `-KVM_EPERM from KVM_HC_HEKI_SET_MEMORY`. */
export function hypercallText(nr: number, ret: number): string {
  const name = isHypercallNr(nr) ? HC_NAMES[nr] : `hypercall ${nr}`;
  return `${statusName(ret)} from ${name}`;
}

/** Little-endian u64 bytes. */
export function u64le(v: bigint): Uint8Array {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, v), true);
  return b;
}

/** Reads `len` bytes at `va`; the attack needs them, so a fault is a setup error. */
export function mustRead(cpu: GuestCpu, va: bigint, len: number): Uint8Array {
  const r = cpu.read(gvaFromRegister(va), len);
  if (!r.ok) throw new AttackSetupError(`cannot read ${len} byte(s) at ${hex(va)}: ${faultLong(r.fault)}`);
  return r.value;
}

/** The address of a System.map symbol. */
export function symbol(kernel: GuestKernel, name: string): bigint {
  const a = kernel.image.systemMap.address(name);
  if (a === undefined) throw new AttackSetupError(`System.map has no symbol ${name}`);
  return a;
}

/** A page-table leaf: where the entry lives, its level (1: 4 KiB, 2: 2 MiB, 3: 1 GiB) and its value. */
export interface Leaf {
  readonly slot: bigint;
  readonly level: 1 | 2 | 3;
  readonly entry: bigint;
}

function readU64(cpu: GuestCpu, pa: bigint): bigint {
  const b = mustRead(cpu, physToVirt(pa), 8);
  return new DataView(b.buffer, b.byteOffset).getBigUint64(0, true);
}

/** The leaf entry that maps `va` in the kernel's page tables (a 4 KiB page or a large page). */
export function leafOf(kernel: GuestKernel, va: bigint): Leaf {
  const pt = kernel.mm.pageTables;
  for (const level of [3, 2] as const) {
    const slot = pt.entryAddress(va, level);
    if (typeof slot !== 'bigint') throw new AttackSetupError(`no level-${level} entry for ${hex(va)}`);
    const e = readU64(kernel.cpu, slot);
    if ((e & PTE.P) === 0n) throw new AttackSetupError(`${hex(va)} is not mapped (level ${level})`);
    if ((e & PTE.PS) !== 0n) return { slot, level, entry: e };
  }
  const slot = pt.entryAddress(va, 1);
  if (typeof slot !== 'bigint') throw new AttackSetupError(`no 4 KiB entry for ${hex(va)}`);
  const e = readU64(kernel.cpu, slot);
  if ((e & PTE.P) === 0n) throw new AttackSetupError(`${hex(va)} is not mapped`);
  return { slot, level: 1, entry: e };
}

/** The guest-physical address `va` maps to, by the kernel's own tables. */
export function physOf(kernel: GuestKernel, va: bigint): bigint {
  const leaf = leafOf(kernel, va);
  const span = leaf.level === 1 ? 0xfffn : leaf.level === 2 ? 0x1f_ffffn : 0x3fff_ffffn;
  return (leaf.entry & PTE_ADDR_MASK & ~span) + (va & span);
}

/**
 * Rewrites the leaf entry of `va` with `f(entry)` by writing guest memory (the attacker owns
 * its page tables) and drops `va` from the TLB. The write itself can fault if page tables were
 * ever protected: the outcome says so.
 */
export function editLeaf(kernel: GuestKernel, va: bigint, f: (entry: bigint) => bigint): GuestOutcome<Leaf> {
  const leaf = leafOf(kernel, va);
  const next = f(leaf.entry);
  const w = kernel.cpu.write(gvaFromRegister(physToVirt(leaf.slot)), u64le(next));
  if (!w.ok) return w;
  kernel.cpu.invlpg(gvaFromRegister(va));
  return { ok: true, value: { ...leaf, entry: next } };
}

/** Writes a whole page-table entry at physical `slot` (through the direct map). */
export function writeEntry(kernel: GuestKernel, slot: bigint, value: bigint): GuestOutcome<void> {
  return kernel.cpu.write(gvaFromRegister(physToVirt(slot)), u64le(value));
}

/**
 * Maps physical `pa` (page-aligned) at a fresh vmalloc address with `flags`, behind the back
 * of the kernel's Heki bookkeeping: nobody tells the hypervisor. Returns the address.
 */
export function mapAlias(kernel: GuestKernel, pa: bigint, flags: bigint): bigint {
  const va = kernel.mm.vmallocArea.alloc(1);
  if (va === undefined) throw new AttackSetupError('vmalloc space exhausted');
  const e = kernel.mm.pageTables.map(va, pa & ~0xfffn, flags);
  if (e) throw new AttackSetupError(`cannot map an alias of ${hex(pa)}: ${e.kind}`);
  kernel.cpu.invlpg(gvaFromRegister(va));
  return va + (pa & 0xfffn);
}

/** Flags of a kernel mapping that is executable and read-only (global, no NX). */
export const EXEC_FLAGS = PTE.G;
/** Flags of a kernel mapping that is writable and not executable. */
export const WRITE_FLAGS = PTE.G | PTE.RW | PTE.NX;

/**
 * Is physical `pa` executable for the kernel? Asked the way an attacker asks it: map it at a
 * fresh address without NX and fetch. Returns the fetch outcome.
 */
export function fetchThroughExecAlias(kernel: GuestKernel, pa: bigint, len: number): GuestOutcome<Uint8Array> {
  return kernel.cpu.fetch(gvaFromRegister(mapAlias(kernel, pa, EXEC_FLAGS)), len);
}

/** A free frame from the kernel's page allocator (kmalloc-style memory), reached through the direct map. */
export function allocFrame(kernel: GuestKernel): { pa: bigint; va: bigint } {
  const pa = kernel.mm.frames.alloc();
  if (pa === undefined) throw new AttackSetupError('out of memory');
  const va = physToVirt(pa);
  const z = kernel.cpu.write(gvaFromRegister(va), new Uint8Array(4096));
  if (!z.ok) throw new AttackSetupError(`cannot clear a fresh frame at ${hex(pa)}: ${faultLong(z.fault)}`);
  return { pa, va };
}

/** `count` physically contiguous frames (for descriptors the hypervisor reads by physical address). */
export function allocContiguous(kernel: GuestKernel, count: number): { pa: bigint; va: bigint } {
  const pa = kernel.mm.frames.allocContiguous(count);
  if (pa === undefined) throw new AttackSetupError(`no ${count} contiguous free frames`);
  const va = physToVirt(pa);
  const z = kernel.cpu.write(gvaFromRegister(va), new Uint8Array(4096 * count));
  if (!z.ok) throw new AttackSetupError(`cannot clear frames at ${hex(pa)}: ${faultLong(z.fault)}`);
  return { pa, va };
}

/** Writes `bytes` at `va`; the attack needs this write to work (its own memory), so a fault is a setup error. */
export function mustWrite(cpu: GuestCpu, va: bigint, bytes: Uint8Array): void {
  const r = cpu.write(gvaFromRegister(va), bytes);
  if (!r.ok) throw new AttackSetupError(`cannot write ${bytes.length} byte(s) at ${hex(va)}: ${faultLong(r.fault)}`);
}
