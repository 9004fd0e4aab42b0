/**
 * The request descriptor of heki-sim's virtio-blk-like disk, as the guest and the VMM's
 * device agree on it.
 *
 * A real virtio-blk request is a descriptor chain: a `struct virtio_blk_outhdr` (u32 type,
 * u32 ioprio, u64 sector; include/uapi/linux/virtio_blk.h), the data buffers, and a one-byte
 * status the device writes last. heki-sim flattens the chain into one 40-byte descriptor in
 * guest memory (all fields little-endian), and the guest rings the doorbell with its
 * guest-physical address (`vmm.devices.disk.notify(gpa)`):
 *
 * ```c
 * struct heki_virtio_blk_req {
 *   u32 type;        // VIRTIO_BLK_T_IN (0, read: disk -> guest) or VIRTIO_BLK_T_OUT (1, write)
 *   u32 ioprio;      // ignored, as by most devices
 *   u64 sector;      // in 512-byte sectors, whatever the logical block size
 *   u64 data_gpa;    // the guest-physical data buffer
 *   u32 data_len;    // bytes: a non-zero multiple of 512, at most VIRTIO_BLK_MAX_DATA
 *   u32 reserved;    // must be 0
 *   u64 status_gpa;  // where the device writes the status byte
 * };
 * ```
 */
import { type Result, err, ok } from './result.ts';

/** virtio-blk sectors are always 512 bytes (VIRTIO 1.2 section 5.2.6). */
export const VIRTIO_BLK_SECTOR_SIZE = 512;

/** Request types (include/uapi/linux/virtio_blk.h). */
export const VIRTIO_BLK_T = {
  /** Read: the device writes guest memory (a DMA write). */
  IN: 0,
  /** Write: the device reads guest memory (a DMA read). */
  OUT: 1,
} as const;

/** Status byte values (include/uapi/linux/virtio_blk.h). */
export const VIRTIO_BLK_S = {
  OK: 0,
  IOERR: 1,
  UNSUPP: 2,
} as const;

/** A status byte value. */
export type VirtioBlkStatus = (typeof VIRTIO_BLK_S)[keyof typeof VIRTIO_BLK_S];

/** Bytes of one descriptor. */
export const VIRTIO_BLK_DESC_SIZE = 40;
/** Largest data buffer of one request (1 MiB, like a typical `size_max * seg_max`). */
export const VIRTIO_BLK_MAX_DATA = 1 << 20;

/** A decoded descriptor (fields as the guest wrote them; the device validates meaning). */
export interface VirtioBlkRequest {
  readonly type: number;
  readonly ioprio: number;
  readonly sector: bigint;
  readonly dataGpa: bigint;
  readonly dataLen: number;
  readonly reserved: number;
  readonly statusGpa: bigint;
}

/** Encodes a descriptor (the guest side; tests and attacks use it). */
export function encodeVirtioBlkRequest(r: Omit<VirtioBlkRequest, 'ioprio' | 'reserved'> & { ioprio?: number; reserved?: number }): Uint8Array {
  const b = new Uint8Array(VIRTIO_BLK_DESC_SIZE);
  const dv = new DataView(b.buffer);
  dv.setUint32(0, r.type >>> 0, true);
  dv.setUint32(4, (r.ioprio ?? 0) >>> 0, true);
  dv.setBigUint64(8, BigInt.asUintN(64, r.sector), true);
  dv.setBigUint64(16, BigInt.asUintN(64, r.dataGpa), true);
  dv.setUint32(24, r.dataLen >>> 0, true);
  dv.setUint32(28, (r.reserved ?? 0) >>> 0, true);
  dv.setBigUint64(32, BigInt.asUintN(64, r.statusGpa), true);
  return b;
}

/** Decodes a descriptor's bytes; refuses only a wrong length (meaning is the device's to check). */
export function decodeVirtioBlkRequest(bytes: Uint8Array): Result<VirtioBlkRequest, string> {
  if (bytes.length !== VIRTIO_BLK_DESC_SIZE) return err(`a virtio-blk descriptor is ${VIRTIO_BLK_DESC_SIZE} bytes, got ${bytes.length}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return ok({
    type: dv.getUint32(0, true),
    ioprio: dv.getUint32(4, true),
    sector: dv.getBigUint64(8, true),
    dataGpa: dv.getBigUint64(16, true),
    dataLen: dv.getUint32(24, true),
    reserved: dv.getUint32(28, true),
    statusGpa: dv.getBigUint64(32, true),
  });
}
