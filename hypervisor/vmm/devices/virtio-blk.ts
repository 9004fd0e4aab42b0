/**
 * An emulated virtio-blk-like disk: a host backing store of 512-byte sectors in memory, and
 * a doorbell. The guest writes a request descriptor (shared/virtio-blk.ts) into its memory
 * and rings the doorbell with its guest-physical address (`notify`), as a virtio driver
 * kicks a virtqueue; the device handles the request synchronously and writes the status byte.
 *
 * Every access to guest memory is a DMA through the device's {@link DmaPort}: reading the
 * descriptor and, for a write request, the data (DMA reads); the data of a read request and
 * the status byte (DMA writes). So the disk cannot write what the guest itself may not write
 * (locked text, rodata, a frame under verification), nor touch private memory in
 * protected-memory mode.
 *
 * Order: read the descriptor (refused: nothing else happens, no status) -> validate it
 * (status IOERR or UNSUPP) -> check that the status byte can be written (refused: no data
 * moves, no status) -> the data transfer (refused: nothing moves, status IOERR) -> the
 * status byte.
 */
import { hex } from '../../../shared/addr.ts';
import { type Result, err, ok } from '../../../shared/result.ts';
import {
  VIRTIO_BLK_DESC_SIZE,
  VIRTIO_BLK_MAX_DATA,
  VIRTIO_BLK_S,
  VIRTIO_BLK_SECTOR_SIZE,
  VIRTIO_BLK_T,
  decodeVirtioBlkRequest,
  type VirtioBlkStatus,
} from '../../../shared/virtio-blk.ts';
import type { DmaPort, DmaRefusal } from './dma-port.ts';

/** A request that completed with VIRTIO_BLK_S_OK. */
export interface VirtioBlkCompletion {
  readonly type: 'read' | 'write';
  readonly sector: bigint;
  readonly bytes: number;
  readonly status: typeof VIRTIO_BLK_S.OK;
}

/** Why a request did not complete with OK. */
export type VirtioBlkErrorKind =
  /** The descriptor itself could not be read (DMA refused): no status was written. */
  | 'descriptor-unreadable'
  /** The status byte's address is refused for DMA: nothing was done, no status written. */
  | 'status-unwritable'
  /** Unknown request type: status UNSUPP. */
  | 'unsupported'
  /** A reserved field set, or a data length that is 0, not a multiple of 512, or too big: IOERR. */
  | 'bad-request'
  /** Sectors past the end of the disk: IOERR. */
  | 'out-of-range'
  /** The data transfer was refused by the DMA port: nothing moved, IOERR. */
  | 'dma-refused';

/** A failed request. */
export interface VirtioBlkError {
  readonly kind: VirtioBlkErrorKind;
  readonly message: string;
  /** The status byte the device wrote, or undefined when it could not write one. */
  readonly status: VirtioBlkStatus | undefined;
  /** The DMA refusal, for the kinds caused by one. */
  readonly refusal?: DmaRefusal;
}

/** How big the disk is. */
export interface VirtioBlkOptions {
  /** Capacity in 512-byte sectors (1 .. 2^32). */
  readonly sectors: number;
}

/** The disk. */
export class VirtioBlk {
  /** Capacity in sectors. */
  readonly sectors: number;
  readonly #port: DmaPort;
  // INVARIANT: keys are sector numbers < sectors; values are 512 bytes. Absent sectors read as zeros.
  readonly #backing = new Map<number, Uint8Array>();
  /** Requests seen, completed with OK, and failed. */
  readonly stats = { requests: 0, completed: 0, failed: 0 };

  constructor(port: DmaPort, options: VirtioBlkOptions) {
    if (!Number.isSafeInteger(options.sectors) || options.sectors < 1 || options.sectors > 2 ** 32) {
      throw new RangeError(`a virtio-blk disk has 1 to 2^32 sectors, got ${options.sectors}`);
    }
    this.sectors = options.sectors;
    this.#port = port;
  }

  /**
   * The doorbell: handles the request whose descriptor is at guest-physical `descGpa`.
   * Never throws for guest input; says what happened, and what status byte it wrote.
   */
  notify(descGpa: bigint): Result<VirtioBlkCompletion, VirtioBlkError> {
    this.stats.requests++;
    const r = this.#handle(descGpa);
    if (r.ok) this.stats.completed++;
    else this.stats.failed++;
    return r;
  }

  #handle(descGpa: bigint): Result<VirtioBlkCompletion, VirtioBlkError> {
    const raw = this.#port.readFromGuest(descGpa, VIRTIO_BLK_DESC_SIZE);
    if (!raw.ok)
      return err({ kind: 'descriptor-unreadable', message: `descriptor at ${hex(descGpa)}: ${raw.error.message}`, status: undefined, refusal: raw.error });
    const decoded = decodeVirtioBlkRequest(raw.value);
    // INVARIANT: the port returned exactly VIRTIO_BLK_DESC_SIZE bytes.
    if (!decoded.ok) throw new Error(`internal: ${decoded.error}`);
    const d = decoded.value;

    const statusOk = this.#port.precheck('to-guest', d.statusGpa, 1);
    if (!statusOk.ok) return err({ kind: 'status-unwritable', message: `status byte: ${statusOk.error.message}`, status: undefined, refusal: statusOk.error });
    const fail = (kind: VirtioBlkErrorKind, status: VirtioBlkStatus, message: string, refusal?: DmaRefusal): Result<never, VirtioBlkError> => {
      this.#writeStatus(d.statusGpa, status);
      return err({ kind, message, status, ...(refusal ? { refusal } : {}) });
    };

    if (d.type !== VIRTIO_BLK_T.IN && d.type !== VIRTIO_BLK_T.OUT)
      return fail('unsupported', VIRTIO_BLK_S.UNSUPP, `request type ${d.type} is not supported (only VIRTIO_BLK_T_IN and _OUT)`);
    if (d.reserved !== 0) return fail('bad-request', VIRTIO_BLK_S.IOERR, `reserved field is ${hex(d.reserved)}, must be 0`);
    if (d.dataLen === 0 || d.dataLen % VIRTIO_BLK_SECTOR_SIZE !== 0 || d.dataLen > VIRTIO_BLK_MAX_DATA) {
      return fail(
        'bad-request',
        VIRTIO_BLK_S.IOERR,
        `data length ${d.dataLen} must be a non-zero multiple of ${VIRTIO_BLK_SECTOR_SIZE} of at most ${VIRTIO_BLK_MAX_DATA}`,
      );
    }
    const count = d.dataLen / VIRTIO_BLK_SECTOR_SIZE;
    if (d.sector + BigInt(count) > BigInt(this.sectors)) {
      return fail(
        'out-of-range',
        VIRTIO_BLK_S.IOERR,
        `sectors ${d.sector}..${d.sector + BigInt(count) - 1n} are past the end of the disk (${this.sectors} sectors)`,
      );
    }
    const first = Number(d.sector);
    if (d.type === VIRTIO_BLK_T.IN) {
      const w = this.#port.writeToGuest(d.dataGpa, this.readSectors(first, count));
      if (!w.ok) return fail('dma-refused', VIRTIO_BLK_S.IOERR, w.error.message, w.error);
    } else {
      const data = this.#port.readFromGuest(d.dataGpa, d.dataLen);
      if (!data.ok) return fail('dma-refused', VIRTIO_BLK_S.IOERR, data.error.message, data.error);
      this.writeSectors(first, data.value);
    }
    this.#writeStatus(d.statusGpa, VIRTIO_BLK_S.OK);
    return ok({ type: d.type === VIRTIO_BLK_T.IN ? 'read' : 'write', sector: d.sector, bytes: d.dataLen, status: VIRTIO_BLK_S.OK });
  }

  #writeStatus(gpa: bigint, status: VirtioBlkStatus): void {
    const w = this.#port.writeToGuest(gpa, Uint8Array.of(status));
    // INVARIANT: prechecked in this same synchronous request; nothing can have changed it.
    if (!w.ok) throw new Error(`internal: status byte at ${hex(gpa)} was prechecked but refused: ${w.error.message}`);
  }

  /** Host side: `count` sectors from `sector` of the backing store. Throws past the end (a host bug). */
  readSectors(sector: number, count: number): Uint8Array {
    this.#checkRange(sector, count);
    const out = new Uint8Array(count * VIRTIO_BLK_SECTOR_SIZE);
    for (let i = 0; i < count; i++) {
      const s = this.#backing.get(sector + i);
      if (s) out.set(s, i * VIRTIO_BLK_SECTOR_SIZE);
    }
    return out;
  }

  /** Host side: writes whole sectors from `sector` (bytes.length a multiple of 512). Throws past the end. */
  writeSectors(sector: number, bytes: Uint8Array): void {
    if (bytes.length % VIRTIO_BLK_SECTOR_SIZE !== 0) throw new RangeError(`${bytes.length} bytes is not a whole number of sectors`);
    const count = bytes.length / VIRTIO_BLK_SECTOR_SIZE;
    this.#checkRange(sector, count);
    for (let i = 0; i < count; i++) {
      this.#backing.set(sector + i, bytes.slice(i * VIRTIO_BLK_SECTOR_SIZE, (i + 1) * VIRTIO_BLK_SECTOR_SIZE));
    }
  }

  /** Host side: every written sector, ascending, with a copy of its bytes (a migration carries the disk). */
  exportSectors(): Array<[number, Uint8Array]> {
    return [...this.#backing.keys()].sort((a, b) => a - b).map((s) => [s, Uint8Array.from(this.#backing.get(s)!)]);
  }

  /** Host side: writes exported sectors back. Throws on a sector past the end or of the wrong size (a host bug). */
  importSectors(sectors: ReadonlyArray<readonly [number, Uint8Array]>): void {
    for (const [s, bytes] of sectors) {
      if (bytes.length !== VIRTIO_BLK_SECTOR_SIZE) throw new RangeError(`sector ${s} has ${bytes.length} bytes`);
      this.writeSectors(s, bytes);
    }
  }

  #checkRange(sector: number, count: number): void {
    if (!Number.isSafeInteger(sector) || !Number.isSafeInteger(count) || sector < 0 || count < 0 || sector + count > this.sectors) {
      throw new RangeError(`sectors [${sector}, +${count}) outside the disk's ${this.sectors} sectors`);
    }
  }
}
