/**
 * A physically contiguous buffer the guest kernel reserves at boot to pass descriptors and
 * page lists to the hypervisor (which takes guest-physical addresses). The kernel writes it
 * through the direct map; only one hypervisor request uses it at a time.
 */
import { gva } from '../../shared/addr.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import { physToVirt } from '../kernel/layout.ts';

/** The reserved buffer. */
export class Scratch {
  #busy = false;
  constructor(
    private readonly cpu: GuestCpu,
    /** Physical address of the first byte (page-aligned). */
    readonly pa: bigint,
    /** Size in bytes. */
    readonly size: number,
  ) {}

  /** Virtual (direct-map) address of `pa + off`. */
  va(off = 0): bigint {
    return physToVirt(this.pa) + BigInt(off);
  }

  /** Writes `bytes` at offset `off`; false when the write faulted or does not fit. */
  write(off: number, bytes: Uint8Array): boolean {
    if (off < 0 || off + bytes.length > this.size) return false;
    return this.cpu.write(gva(this.va(off)), bytes).ok;
  }

  /** Reads `len` bytes at offset `off`. */
  read(off: number, len: number): Uint8Array | undefined {
    const r = this.cpu.read(gva(this.va(off)), len);
    return r.ok ? r.value : undefined;
  }

  /** Runs `f` with the buffer to itself (hypervisor requests are serialised through it). */
  async exclusive<T>(f: () => Promise<T>): Promise<T> {
    while (this.#busy) await new Promise((r) => setImmediate(r));
    this.#busy = true;
    try {
      return await f();
    } finally {
      this.#busy = false;
    }
  }
}
