/**
 * The DMA port of an emulated device: the host-side IOMMU that makes the VMM's devices obey
 * the EPT.
 *
 * Rick Edgecombe's objection to Heki: the EPT only stops the guest's own accesses; DMA from
 * the VMM's emulated devices writes guest memory from the host side and bypasses it, so a
 * guest could ask its disk to read a sector over locked kernel text. Here every device
 * transfer goes through a port that checks, for every page, before any byte moves:
 *
 * - the range lies inside guest memory;
 * - to guest (the device writes, e.g. a disk read): the frame is not IMMUTABLE, not FROZEN
 *   (a verification is in flight on it), and writable in the EPT (W);
 * - from guest (the device reads, e.g. a disk write): the frame is readable in the EPT (R);
 * - in protected-memory mode, the frame is shared (HostMemory's rule).
 *
 * A refused transfer moves nothing at all, and is recorded once: a `dma-refused` event in the
 * VMM's log and a `dma-refused` audit record. The bytes then move through the device's named
 * copy path in HostMemory.
 */
import { framesOfRange, hex, isAddrError, tryGpa, type Gfn, type GuestPhysAddr } from '../../../shared/addr.ts';
import { type Result, err, ok } from '../../../shared/result.ts';
import { EPT_FROZEN, EPT_IMMUTABLE, EPT_R, EPT_W, eptString } from '../../ept/permissions.ts';
import type { EptView } from '../../ept/ept.ts';
import type { HostCopyPath, HostMemory } from '../host-memory.ts';
import type { HostRefusalSink } from '../host-refusals.ts';

/** Why a transfer was refused. */
export type DmaRefusalKind = 'outside-memory' | 'immutable' | 'frozen' | 'not-writable' | 'not-readable' | 'private';

/** A refused transfer. */
export interface DmaRefusal {
  readonly kind: DmaRefusalKind;
  readonly device: HostCopyPath;
  readonly direction: 'to-guest' | 'from-guest';
  readonly gpa: bigint;
  readonly len: number;
  /** The first frame that refused (-1 for outside-memory). */
  readonly frame: number;
  /** The frame's EPT bits at the time (0 for outside-memory). */
  readonly perms: number;
  readonly message: string;
}

const WHY: Record<Exclude<DmaRefusalKind, 'outside-memory'>, string> = {
  immutable: 'is IMMUTABLE in the EPT',
  frozen: 'is FROZEN (a verification of it is in flight)',
  'not-writable': 'is not writable in the EPT',
  'not-readable': 'is not readable in the EPT',
  private: 'is private guest memory (protected-memory mode)',
};

/** One device's port. */
export class DmaPort {
  readonly device: HostCopyPath;
  readonly #ept: EptView;
  readonly #host: HostMemory;
  readonly #sink: HostRefusalSink;
  /** Transfers done and refused. */
  readonly stats = { toGuest: 0, fromGuest: 0, refused: 0 };

  constructor(device: HostCopyPath, ept: EptView, host: HostMemory, sink: HostRefusalSink) {
    this.device = device;
    this.#ept = ept;
    this.#host = host;
    this.#sink = sink;
  }

  /**
   * What a transfer would run into, without recording or moving anything. TRUST: `gpa` is the
   * guest's (a virtqueue descriptor's address): this is where it becomes a guest-physical
   * address, or a refusal.
   */
  check(direction: 'to-guest' | 'from-guest', gpa: bigint, len: number): DmaRefusal | undefined {
    const r = this.#range(direction, gpa, len);
    return typeof r === 'bigint' ? undefined : r;
  }

  /** The validated start of the transfer, or its refusal. */
  #range(direction: 'to-guest' | 'from-guest', raw: bigint, len: number): GuestPhysAddr | DmaRefusal {
    const verb = direction === 'to-guest' ? 'write' : 'read';
    const what = `${this.device} DMA ${verb} of ${len} bytes at ${hex(raw)}`;
    const gpa = tryGpa(raw);
    if (!Number.isSafeInteger(len) || len < 0 || isAddrError(gpa) || gpa + BigInt(len) > this.#host.size) {
      return {
        kind: 'outside-memory',
        device: this.device,
        direction,
        gpa: raw,
        len,
        frame: -1,
        perms: 0,
        message: `${what} refused: outside guest memory [0, ${hex(this.#host.size)})`,
      };
    }
    if (len === 0) return gpa;
    const { first, end } = framesOfRange(gpa, gpa + BigInt(len));
    for (let f: Gfn = first; f < end; f++) {
      const perms = this.#ept.get(f);
      let kind: Exclude<DmaRefusalKind, 'outside-memory'> | undefined;
      if (direction === 'to-guest') {
        if (perms & EPT_IMMUTABLE) kind = 'immutable';
        else if (perms & EPT_FROZEN) kind = 'frozen';
        else if (!(perms & EPT_W)) kind = 'not-writable';
      } else if (!(perms & EPT_R)) {
        kind = 'not-readable';
      }
      if (kind === undefined && !this.#host.isShared(f)) kind = 'private';
      if (kind !== undefined) {
        return {
          kind,
          device: this.device,
          direction,
          gpa: raw,
          len,
          frame: f,
          perms,
          message: `${what} refused: frame ${hex(f)} ${WHY[kind]} (EPT ${eptString(perms)}); nothing was transferred`,
        };
      }
    }
    return gpa;
  }

  /**
   * Checks a transfer the device will make later in the same request (virtio's status byte is
   * written last, but a request whose status cannot be written must not start): a refusal is
   * recorded exactly as a refused transfer is.
   */
  precheck(direction: 'to-guest' | 'from-guest', gpa: bigint, len: number): Result<void, DmaRefusal> {
    const refusal = this.check(direction, gpa, len);
    return refusal ? err(this.#refuse(refusal)) : ok(undefined);
  }

  /** The device writes `bytes` into guest memory at `gpa`: all of it, or nothing. */
  writeToGuest(gpa: bigint, bytes: Uint8Array): Result<void, DmaRefusal> {
    const at = this.#range('to-guest', gpa, bytes.length);
    if (typeof at !== 'bigint') return err(this.#refuse(at));
    const r = this.#host.copyToGuest(this.device, at, bytes);
    // INVARIANT: check() covered range and privacy, so the copy path cannot refuse.
    if (!r.ok) throw new Error(`internal: DMA port checked ${hex(gpa)}+${bytes.length} but the copy path refused: ${r.error.message}`);
    this.stats.toGuest++;
    return ok(undefined);
  }

  /** The device reads `len` bytes of guest memory at `gpa`. */
  readFromGuest(gpa: bigint, len: number): Result<Uint8Array, DmaRefusal> {
    const at = this.#range('from-guest', gpa, len);
    if (typeof at !== 'bigint') return err(this.#refuse(at));
    const r = this.#host.copyFromGuest(this.device, at, len);
    if (!r.ok) throw new Error(`internal: DMA port checked ${hex(gpa)}+${len} but the copy path refused: ${r.error.message}`);
    this.stats.fromGuest++;
    return ok(r.value);
  }

  #refuse(r: DmaRefusal): DmaRefusal {
    this.stats.refused++;
    this.#sink.record({
      kind: 'dma-refused',
      device: r.device,
      direction: r.direction,
      gpa: r.gpa,
      len: r.len,
      frame: r.frame,
      refusal: r.kind,
      detail: r.message,
    });
    return r;
  }
}
