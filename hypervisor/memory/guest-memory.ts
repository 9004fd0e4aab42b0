/**
 * Sparse guest-physical memory.
 *
 * After rust-vmm's vm-memory: the guest's RAM is a flat range [0, size) of guest-physical
 * addresses, and only pages that have been written hold host memory. A 64 GiB guest that
 * touches a hundred pages costs a hundred 4 KiB buffers. Reads of untouched pages return
 * zeros and allocate nothing.
 *
 * A booted VM's memory can be shared copy-on-write with a fork ({@link GuestMemory.shareFrom}):
 * both then hold the same page buffers, and each copies a page on its first write to it.
 *
 * This is the raw backing store: it checks bounds, never permissions. Permission checks
 * belong to the EPT and are applied by the vCPU before it calls in here, and by the VMM's
 * device paths (hypervisor/vmm) before they do.
 */
import { PAGE_SHIFT, PAGE_SIZE, hex, type Gfn, type GuestPhysAddr } from '../../shared/addr.ts';

/** Read and write access to guest-physical memory (no management). */
export interface GuestMemoryAccess {
  /** Bytes of guest-physical address space: valid addresses are [0, size). */
  readonly size: bigint;
  /** Number of 4 KiB frames: valid frame numbers are [0, frames). */
  readonly frames: number;
  /** True when [addr, addr + len) lies inside guest memory. */
  contains(addr: GuestPhysAddr, len: number): boolean;
  /** Copies `len` bytes out of guest memory. Throws RangeError outside guest memory. */
  read(addr: GuestPhysAddr, len: number): Uint8Array;
  /** Copies `bytes` into guest memory. Throws RangeError outside guest memory. */
  write(addr: GuestPhysAddr, bytes: Uint8Array): void;
  /** Reads a little-endian u64. */
  readU64(addr: GuestPhysAddr): bigint;
  /** Writes a little-endian u64. */
  writeU64(addr: GuestPhysAddr, value: bigint): void;
}

/** Sparse guest memory with its management operations. */
export class GuestMemory implements GuestMemoryAccess {
  readonly size: bigint;
  readonly frames: number;
  // INVARIANT: every key is a frame number < frames; every value is PAGE_SIZE bytes.
  #pages = new Map<number, Uint8Array>();
  /**
   * Frames whose buffer this memory may write in place. INVARIANT: a resident frame not in
   * the set may share its buffer with another memory (a fork, or the memory forked from):
   * {@link #writable} copies it before the first write. Undefined: every page is private
   * (no fork ever shared this memory), and writes skip the check.
   */
  #owned: Set<number> | undefined;

  /** Creates `size` bytes of guest RAM (a multiple of 4 KiB), none of it resident yet. */
  constructor(size: bigint) {
    if (size <= 0n || size % BigInt(PAGE_SIZE) !== 0n || size > 1n << 52n) {
      throw new RangeError(`guest memory size ${size} must be a positive multiple of 4 KiB below 2^52`);
    }
    this.size = size;
    this.frames = Number(size >> BigInt(PAGE_SHIFT));
  }

  contains(addr: GuestPhysAddr, len: number): boolean {
    return addr >= 0n && len >= 0 && addr + BigInt(len) <= this.size;
  }

  /** Number of frames that hold host memory. */
  residentPages(): number {
    return this.#pages.size;
  }

  /** The frames that hold host memory, ascending. */
  residentFrames(): Gfn[] {
    // INVARIANT: keys are frames below `frames` (see #pages).
    return [...this.#pages.keys()].sort((a, b) => a - b) as Gfn[];
  }

  /**
   * Makes this memory a copy-on-write copy of `source`'s (a fork of a booted VM): both hold
   * the same page buffers from now on, and whichever writes a page first copies it, so no
   * write of one is ever seen by the other. The cost is one map entry per resident page.
   * Throws RangeError unless this memory is the same size and holds no page yet.
   */
  shareFrom(source: GuestMemory): void {
    if (source.size !== this.size) throw new RangeError(`cannot share ${hex(source.size)} bytes of memory with a VM of ${hex(this.size)}`);
    if (this.#pages.size !== 0) throw new RangeError('cannot share memory into a VM whose memory is in use');
    this.#pages = new Map(source.#pages);
    // Every page is shared now, the source's too: both copy before their next write.
    this.#owned = new Set();
    source.#owned = new Set();
  }

  /** Resident frames that still share their buffer with a fork (or the memory forked from). */
  sharedPages(): number {
    return this.#owned === undefined ? 0 : this.#pages.size - this.#owned.size;
  }

  /**
   * The buffer of resident `frame` to write into: its own, copied first when it was shared;
   * undefined when the frame is not resident.
   */
  #writable(frame: number): Uint8Array | undefined {
    const page = this.#pages.get(frame);
    const owned = this.#owned;
    if (page === undefined || owned === undefined || owned.has(frame)) return page;
    const copy = page.slice();
    this.#pages.set(frame, copy);
    owned.add(frame);
    return copy;
  }

  /** A new zeroed page for `frame`, owned by this memory. */
  #allocate(frame: number): Uint8Array {
    const page = new Uint8Array(PAGE_SIZE);
    this.#pages.set(frame, page);
    this.#owned?.add(frame);
    return page;
  }

  read(addr: GuestPhysAddr, len: number): Uint8Array {
    this.#check(addr, len);
    const out = new Uint8Array(len);
    let done = 0;
    let frame = Number(addr >> BigInt(PAGE_SHIFT));
    let off = Number(addr & BigInt(PAGE_SIZE - 1));
    while (done < len) {
      const n = Math.min(PAGE_SIZE - off, len - done);
      const page = this.#pages.get(frame);
      if (page) out.set(page.subarray(off, off + n), done);
      done += n;
      frame++;
      off = 0;
    }
    return out;
  }

  write(addr: GuestPhysAddr, bytes: Uint8Array): void {
    this.#check(addr, bytes.length);
    let done = 0;
    let frame = Number(addr >> BigInt(PAGE_SHIFT));
    let off = Number(addr & BigInt(PAGE_SIZE - 1));
    while (done < bytes.length) {
      const n = Math.min(PAGE_SIZE - off, bytes.length - done);
      let page = this.#writable(frame);
      if (!page) {
        if (isZero(bytes, done, n)) {
          // Writing zeros to an untouched page changes nothing observable: stay sparse.
          done += n;
          frame++;
          off = 0;
          continue;
        }
        page = this.#allocate(frame);
      }
      page.set(bytes.subarray(done, done + n), off);
      done += n;
      frame++;
      off = 0;
    }
  }

  /**
   * Copies `len` bytes at `offset` into frame `first` (the range may run on into the next
   * frames) into `dst` at `dstOff`, with no allocation and no bigint: the core's hot paths
   * (text patching) use it. Throws RangeError outside guest memory.
   */
  copyOut(first: Gfn, offset: number, dst: Uint8Array, dstOff: number, len: number): void {
    const gpa = first * PAGE_SIZE + offset;
    this.#checkN(gpa, len);
    let done = 0;
    let frame = Math.floor(gpa / PAGE_SIZE);
    let off = gpa % PAGE_SIZE;
    while (done < len) {
      const n = Math.min(PAGE_SIZE - off, len - done);
      const page = this.#pages.get(frame);
      if (page) for (let k = 0; k < n; k++) dst[dstOff + done + k] = page[off + k] as number;
      else dst.fill(0, dstOff + done, dstOff + done + n);
      done += n;
      frame++;
      off = 0;
    }
  }

  /** Copies `len` bytes of `src` at `srcOff` to `offset` into frame `first`, as {@link write} does, with no allocation. */
  copyIn(first: Gfn, offset: number, src: Uint8Array, srcOff: number, len: number): void {
    const gpa = first * PAGE_SIZE + offset;
    this.#checkN(gpa, len);
    let done = 0;
    let frame = Math.floor(gpa / PAGE_SIZE);
    let off = gpa % PAGE_SIZE;
    while (done < len) {
      const n = Math.min(PAGE_SIZE - off, len - done);
      let page = this.#writable(frame);
      if (!page) {
        if (isZero(src, srcOff + done, n)) {
          // As in write(): zeros to an untouched page change nothing observable.
          done += n;
          frame++;
          off = 0;
          continue;
        }
        page = this.#allocate(frame);
      }
      for (let k = 0; k < n; k++) page[off + k] = src[srcOff + done + k] as number;
      done += n;
      frame++;
      off = 0;
    }
  }

  /**
   * Writes `src[i]` at `gpa + i * stride` for every i (one field of each entry of a table in
   * guest memory, such as the status byte of each patch of a batch), a page at a time.
   */
  writeStrided(addr: GuestPhysAddr, stride: number, src: Uint8Array): void {
    if (src.length === 0) return;
    const gpa = Number(addr);
    this.#checkN(gpa, (src.length - 1) * stride + 1);
    let frame = -1;
    let page: Uint8Array | undefined;
    for (let i = 0; i < src.length; i++) {
      const a = gpa + i * stride;
      const f = Math.floor(a / PAGE_SIZE);
      if (f !== frame) {
        frame = f;
        page = this.#writable(f);
      }
      const v = src[i] as number;
      if (!page) {
        if (v === 0) continue;
        page = this.#allocate(f);
      }
      page[a - f * PAGE_SIZE] = v;
    }
  }

  /** Writes one byte at `addr`. */
  writeByte(addr: GuestPhysAddr, value: number): void {
    const gpa = Number(addr);
    this.#checkN(gpa, 1);
    const frame = Math.floor(gpa / PAGE_SIZE);
    let page = this.#writable(frame);
    if (!page) {
      if ((value & 0xff) === 0) return;
      page = this.#allocate(frame);
    }
    page[gpa % PAGE_SIZE] = value;
  }

  readU64(addr: GuestPhysAddr): bigint {
    const b = this.read(addr, 8);
    return new DataView(b.buffer).getBigUint64(0, true);
  }

  writeU64(addr: GuestPhysAddr, value: bigint): void {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
    this.write(addr, b);
  }

  /** Drops every resident page: all memory reads as zero again (a VMM-driven reset). */
  clear(): void {
    this.#pages.clear();
    this.#owned?.clear();
  }

  /** Drops the given frames (their contents become zero). */
  discardFrames(frames: Iterable<Gfn>): void {
    for (const f of frames) {
      this.#pages.delete(f);
      this.#owned?.delete(f);
    }
  }

  #checkN(gpa: number, len: number): void {
    if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`bad access length ${len}`);
    if (!Number.isSafeInteger(gpa) || gpa < 0 || gpa + len > this.frames * PAGE_SIZE) {
      throw new RangeError(`guest-physical range ${hex(gpa)}+${len} is outside guest memory [0, ${hex(this.size)})`);
    }
  }

  #check(addr: GuestPhysAddr, len: number): void {
    if (!Number.isSafeInteger(len) || len < 0) throw new RangeError(`bad access length ${len}`);
    if (!this.contains(addr, len)) {
      throw new RangeError(`guest-physical range ${hex(addr)}+${len} is outside guest memory [0, ${hex(this.size)})`);
    }
  }
}

function isZero(bytes: Uint8Array, start: number, n: number): boolean {
  for (let i = start; i < start + n; i++) if (bytes[i] !== 0) return false;
  return true;
}
