/**
 * Branded address types shared by the guest, the core and the verifier.
 *
 * After rust-vmm's vm-memory `GuestAddress`: an address is not a number you can add to by
 * accident. Values are made only by the validating constructors below, and arithmetic goes
 * through named helpers. Kernel virtual addresses exceed 2^53 (0xffffffff81000000), so
 * virtual and physical addresses are `bigint`; frame numbers stay plain numbers because
 * they sit on the hot path of every EPT check (a 52-bit physical address space has at most
 * 2^40 frames, well inside a double's 2^53 exact range).
 */

/** Size of one x86-64 base page. */
export const PAGE_SIZE = 4096;
/** `PAGE_SIZE` as a bigint, for address arithmetic. */
export const PAGE_SIZE_N = 4096n;
/** log2(PAGE_SIZE). */
export const PAGE_SHIFT = 12;
/** x86-64 MAXPHYADDR we model: 52 bits, the architectural maximum. */
export const MAX_PHYS_BITS = 52;
/** One past the highest guest-physical address the architecture allows. */
export const MAX_PHYS_ADDR = 1n << BigInt(MAX_PHYS_BITS);

declare const gpaBrand: unique symbol;
declare const gvaBrand: unique symbol;
declare const gfnBrand: unique symbol;

/** A guest-physical address (what the EPT translates). */
export type GuestPhysAddr = bigint & { readonly [gpaBrand]: true };
/** A guest-virtual address (what the guest page tables translate), canonical. */
export type GuestVirtAddr = bigint & { readonly [gvaBrand]: true };
/** A guest frame number: a guest-physical address shifted right by `PAGE_SHIFT`. */
export type Gfn = number & { readonly [gfnBrand]: true };

/** Why a value could not become an address. */
export type AddrError =
  | { kind: 'negative'; value: bigint }
  | { kind: 'beyond-maxphyaddr'; value: bigint }
  | { kind: 'non-canonical'; value: bigint }
  | { kind: 'bad-gfn'; value: number };

/** A human-readable message for an {@link AddrError}. */
export function addrErrorMessage(e: AddrError): string {
  switch (e.kind) {
    case 'negative':
      return `address ${e.value} is negative`;
    case 'beyond-maxphyaddr':
      return `guest-physical address ${hex(e.value)} is beyond the ${MAX_PHYS_BITS}-bit physical address space`;
    case 'non-canonical':
      return `virtual address ${hex(e.value)} is not canonical (bits 63..47 must all equal bit 47)`;
    case 'bad-gfn':
      return `frame number ${e.value} is not a non-negative integer below 2^${MAX_PHYS_BITS - PAGE_SHIFT}`;
  }
}

/** Makes a guest-physical address, or says why the value is not one. */
export function tryGpa(value: bigint): GuestPhysAddr | AddrError {
  if (value < 0n) return { kind: 'negative', value };
  if (value >= MAX_PHYS_ADDR) return { kind: 'beyond-maxphyaddr', value };
  return value as GuestPhysAddr;
}

/** Makes a guest-physical address; throws on an invalid value (an internal invariant). */
export function gpa(value: bigint | number): GuestPhysAddr {
  const r = tryGpa(BigInt(value));
  if (typeof r !== 'bigint') throw new RangeError(addrErrorMessage(r));
  return r;
}

/** True when `value` is a canonical 48-bit x86-64 virtual address. */
export function isCanonical(value: bigint): boolean {
  if (value < 0n || value >= 1n << 64n) return false;
  const upper = value >> 47n;
  return upper === 0n || upper === 0x1ffffn;
}

/** Makes a guest-virtual address, or says why the value is not one. */
export function tryGva(value: bigint): GuestVirtAddr | AddrError {
  if (value < 0n) return { kind: 'negative', value };
  if (!isCanonical(value)) return { kind: 'non-canonical', value };
  return value as GuestVirtAddr;
}

/** Makes a guest-virtual address; throws on a non-canonical value (an internal invariant). */
export function gva(value: bigint | number): GuestVirtAddr {
  const r = tryGva(BigInt(value));
  if (typeof r !== 'bigint') throw new RangeError(addrErrorMessage(r));
  return r;
}

/** One past the highest frame number of the architecture's physical address space. */
export const MAX_GFN = 2 ** (MAX_PHYS_BITS - PAGE_SHIFT);
const PAGE_SHIFT_N = BigInt(PAGE_SHIFT);
const PAGE_MASK_N = PAGE_SIZE_N - 1n;

/** Makes a frame number, or says why the value is not one. */
export function tryGfn(value: number): Gfn | AddrError {
  if (!Number.isSafeInteger(value) || value < 0 || value >= MAX_GFN) return { kind: 'bad-gfn', value };
  return value as Gfn;
}

/** Makes a frame number; throws on an invalid value (an internal invariant). */
export function gfn(value: number): Gfn {
  const r = tryGfn(value);
  if (typeof r !== 'number') throw new RangeError(addrErrorMessage(r));
  return r;
}

/** True when `r`, the answer of a `try*` constructor, is an error rather than an address. */
export function isAddrError<A extends bigint | number>(r: A | AddrError): r is AddrError {
  return typeof r === 'object';
}

/** The frame that holds `addr`. */
export function gpaToGfn(addr: GuestPhysAddr): Gfn {
  return Number(addr >> PAGE_SHIFT_N) as Gfn;
}

/** The first address of frame `frame`. */
export function gfnToGpa(frame: Gfn): GuestPhysAddr {
  return (BigInt(frame) << PAGE_SHIFT_N) as GuestPhysAddr;
}

/**
 * The address `offset` bytes into frame `frame`. `offset` is an in-page offset, [0, PAGE_SIZE):
 * the result then stays below MAX_PHYS_ADDR without a check (the frame is below MAX_GFN).
 */
export function gpaInFrame(frame: Gfn, offset: number): GuestPhysAddr {
  if (!(offset >= 0 && offset < PAGE_SIZE)) throw new RangeError(`in-page offset ${offset} is outside [0, ${PAGE_SIZE})`);
  return ((BigInt(frame) << PAGE_SHIFT_N) | BigInt(offset)) as GuestPhysAddr;
}

/**
 * The frames [first, end) that hold the bytes [start, endAddr) of guest-physical memory (an
 * empty range when endAddr <= start). Throws when either bound is outside the architecture's
 * physical address space (an internal invariant: the caller validated the range).
 */
export function framesOfRange(start: bigint, endAddr: bigint): { readonly first: Gfn; readonly end: Gfn } {
  const first = gpaToGfn(gpa(start));
  if (endAddr <= start) return { first, end: first };
  return { first, end: (gpaToGfn(gpa(endAddr - 1n)) + 1) as Gfn };
}

/** `frame + delta`, checked to stay a frame number. */
export function gfnAdd(frame: Gfn, delta: number): Gfn {
  return gfn(frame + delta);
}

/** Offset of `addr` inside its page. */
export function pageOffset(addr: GuestPhysAddr | GuestVirtAddr): number {
  return Number(addr & PAGE_MASK_N);
}

/** `addr` rounded down to its page. */
export function gpaPageBase(addr: GuestPhysAddr): GuestPhysAddr {
  return (addr & ~PAGE_MASK_N) as GuestPhysAddr;
}

/** The first frame after the range [addr, addr + len) ends, or `gpaToGfn(addr)` when len is 0. */
export function gpaEndGfn(addr: GuestPhysAddr, len: number): Gfn {
  return Number((addr + BigInt(len) + PAGE_MASK_N) >> PAGE_SHIFT_N) as Gfn;
}

/** True when `addr` is the first byte of a page. */
export function isPageAligned(addr: bigint): boolean {
  return (addr & (PAGE_SIZE_N - 1n)) === 0n;
}

/** `addr + delta`, checked to stay a guest-physical address. */
export function gpaAdd(addr: GuestPhysAddr, delta: bigint | number): GuestPhysAddr {
  return gpa(addr + BigInt(delta));
}

/**
 * A register value used as a linear address, as the guest's own code may use any 64-bit value
 * in an address operand (an attack probing the canonical hole, a scenario naming an address).
 * Not validated here: the vCPU is the check that takes a #GP on a non-canonical value, as the
 * CPU does, and that fault is what such a caller wants to reach. Everything else uses
 * {@link gva} or {@link tryGva}.
 */
export function gvaFromRegister(value: bigint): GuestVirtAddr {
  return value as GuestVirtAddr;
}

/** `addr + delta`, checked to stay canonical. */
export function gvaAdd(addr: GuestVirtAddr, delta: bigint | number): GuestVirtAddr {
  return gva(addr + BigInt(delta));
}

/** `addr` rounded down to its page. */
export function gvaPageBase(addr: GuestVirtAddr): GuestVirtAddr {
  return (addr & ~PAGE_MASK_N) as GuestVirtAddr;
}

/** The virtual page number of `addr` (the TLB's key). */
export function gvaPageNumber(addr: GuestVirtAddr): bigint {
  return addr >> PAGE_SHIFT_N;
}

/** `0x`-prefixed lower-case hex, for messages and logs. */
export function hex(value: bigint | number): string {
  return `0x${value.toString(16)}`;
}

/** Parses `0x...` or decimal text into a bigint, or returns undefined. */
export function parseBigInt(text: string): bigint | undefined {
  const t = text.trim();
  if (!/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(t)) return undefined;
  return BigInt(t);
}
