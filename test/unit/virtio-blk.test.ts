/**
 * The emulated virtio-blk disk: requests through a descriptor in guest memory and the
 * doorbell, every guest-memory access a DMA through the port that obeys the EPT.
 */
import { gpa, gpaToGfn } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, bootSynthetic, lockSyntheticKernel } from '../helpers/synthetic-machine.ts';
import {
  VIRTIO_BLK_S,
  VIRTIO_BLK_T,
  encodeVirtioBlkRequest,
  decodeVirtioBlkRequest,
  VIRTIO_BLK_DESC_SIZE,
  type VirtioBlkStatus,
} from '../../shared/virtio-blk.ts';
import { EPT_R } from '../../hypervisor/ept/permissions.ts';
import { HC, KVM_MAP_GPA_RANGE } from '../../shared/abi.ts';
import type { VirtioBlkErrorKind } from '../../hypervisor/vmm/devices/virtio-blk.ts';

const DESC = 0x70_0000n;
const STATUS = 0x70_0100n;
const BUF = 0x71_0000n;

function machine() {
  const m = bootSynthetic();
  const disk = m.vmm.devices.disk;
  const pattern = Uint8Array.from({ length: 1024 }, (_, i) => (i * 7 + 3) & 0xff);
  disk.writeSectors(4, pattern);
  return { m, disk, pattern, mem: m.vmm.core.memory };
}

function submit(m: ReturnType<typeof machine>, req: Parameters<typeof encodeVirtioBlkRequest>[0]) {
  m.mem.write(gpa(DESC), encodeVirtioBlkRequest(req));
  m.mem.write(gpa(STATUS), Uint8Array.of(0xff));
  return m.disk.notify(DESC);
}

test('the descriptor encodes and decodes field by field (40 bytes, little-endian)', (t) => {
  const b = encodeVirtioBlkRequest({ type: 1, sector: 0x1122334455n, dataGpa: 0x1000n, dataLen: 512, statusGpa: 0x2000n, ioprio: 5 });
  t.is(b.length, VIRTIO_BLK_DESC_SIZE);
  t.deepEqual([...b.subarray(0, 4)], [1, 0, 0, 0]);
  const d = decodeVirtioBlkRequest(b);
  t.true(d.ok);
  if (d.ok) t.like(d.value, { type: 1, ioprio: 5, sector: 0x1122334455n, dataGpa: 0x1000n, dataLen: 512, reserved: 0, statusGpa: 0x2000n });
  t.false(decodeVirtioBlkRequest(b.subarray(0, 39)).ok);
});

test('a read copies sectors into a writable guest buffer and writes status OK', (t) => {
  const m = machine();
  const r = submit(m, { type: VIRTIO_BLK_T.IN, sector: 4n, dataGpa: BUF, dataLen: 1024, statusGpa: STATUS });
  t.true(r.ok);
  if (r.ok) t.like(r.value, { type: 'read', sector: 4n, bytes: 1024, status: VIRTIO_BLK_S.OK });
  t.deepEqual(m.mem.read(gpa(BUF), 1024), m.pattern);
  t.is(m.mem.read(gpa(STATUS), 1)[0], VIRTIO_BLK_S.OK);
  t.is(m.m.vmm.log.byKind('dma-refused').length, 0);
});

test('a write copies guest bytes to the disk', (t) => {
  const m = machine();
  const data = new Uint8Array(512).fill(0x5a);
  m.mem.write(gpa(BUF), data);
  const r = submit(m, { type: VIRTIO_BLK_T.OUT, sector: 100n, dataGpa: BUF, dataLen: 512, statusGpa: STATUS });
  t.true(r.ok);
  t.deepEqual(m.disk.readSectors(100, 1), data);
  t.is(m.mem.read(gpa(STATUS), 1)[0], VIRTIO_BLK_S.OK);
});

test('a read spanning pages checks every page: one non-writable page refuses the whole transfer', async (t) => {
  const m = machine();
  t.is(await lockSyntheticKernel(m.m), 0);
  // The buffer straddles a writable page (the last one below text) and the locked text page.
  const straddle = LAYOUT.text - 512n;
  const before = m.mem.read(gpa(straddle), 1024);
  const r = submit(m, { type: VIRTIO_BLK_T.IN, sector: 4n, dataGpa: straddle, dataLen: 1024, statusGpa: STATUS });
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'dma-refused');
    t.is(r.error.status, VIRTIO_BLK_S.IOERR);
    t.is(r.error.refusal?.kind, 'immutable');
    t.is(r.error.refusal?.frame, Number(LAYOUT.text >> 12n));
  }
  t.deepEqual(m.mem.read(gpa(straddle), 1024), before, 'not even the writable half was written');
  t.is(m.mem.read(gpa(STATUS), 1)[0], VIRTIO_BLK_S.IOERR);
});

test('a read into a non-writable (but not immutable) page is refused as not-writable', async (t) => {
  const m = machine();
  m.m.vmm.core.ept.set(gpaToGfn(gpa(BUF)), EPT_R);
  const r = submit(m, { type: VIRTIO_BLK_T.IN, sector: 4n, dataGpa: BUF, dataLen: 512, statusGpa: STATUS });
  t.false(r.ok);
  if (!r.ok) t.is(r.error.refusal?.kind, 'not-writable');
});

test('a write from a page the EPT makes unreadable is refused and the disk is unchanged', (t) => {
  const m = machine();
  m.mem.write(gpa(BUF), new Uint8Array(512).fill(1));
  m.m.vmm.core.ept.set(gpaToGfn(gpa(BUF)), 0); // no permissions at all
  const r = submit(m, { type: VIRTIO_BLK_T.OUT, sector: 4n, dataGpa: BUF, dataLen: 512, statusGpa: STATUS });
  t.false(r.ok);
  if (!r.ok) t.is(r.error.refusal?.kind, 'not-readable');
  t.deepEqual(m.disk.readSectors(4, 1), m.pattern.subarray(0, 512));
});

test('malformed requests: unsupported type, bad length, out of range, reserved bits', (t) => {
  const m = machine();
  const base = { sector: 0n, dataGpa: BUF, dataLen: 512, statusGpa: STATUS };
  const cases: Array<[Parameters<typeof encodeVirtioBlkRequest>[0], VirtioBlkErrorKind, VirtioBlkStatus]> = [
    [{ ...base, type: 4 }, 'unsupported', VIRTIO_BLK_S.UNSUPP],
    [{ ...base, type: 0, dataLen: 0 }, 'bad-request', VIRTIO_BLK_S.IOERR],
    [{ ...base, type: 0, dataLen: 513 }, 'bad-request', VIRTIO_BLK_S.IOERR],
    [{ ...base, type: 0, dataLen: 2 << 20 }, 'bad-request', VIRTIO_BLK_S.IOERR],
    [{ ...base, type: 0, sector: 2047n, dataLen: 1024 }, 'out-of-range', VIRTIO_BLK_S.IOERR],
    [{ ...base, type: 0, sector: (1n << 64n) - 1n }, 'out-of-range', VIRTIO_BLK_S.IOERR],
    [{ ...base, type: 0, reserved: 1 }, 'bad-request', VIRTIO_BLK_S.IOERR],
  ];
  for (const [req, kind, status] of cases) {
    const r = submit(m, req);
    t.false(r.ok);
    if (!r.ok) {
      t.is(r.error.kind, kind, r.error.message);
      t.is(r.error.status, status);
    }
    t.is(m.mem.read(gpa(STATUS), 1)[0], status);
  }
  t.is(m.disk.stats.failed, cases.length);
});

test('a status byte the device may not write stops the request before any data moves', async (t) => {
  const m = machine();
  t.is(await lockSyntheticKernel(m.m), 0);
  const before = m.mem.read(gpa(BUF), 512);
  const r = submit(m, { type: VIRTIO_BLK_T.IN, sector: 4n, dataGpa: BUF, dataLen: 512, statusGpa: LAYOUT.rodata });
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'status-unwritable');
    t.is(r.error.status, undefined);
  }
  t.deepEqual(m.mem.read(gpa(BUF), 512), before);
  t.is(m.m.vmm.log.byKind('dma-refused').length, 1);
});

test('a descriptor outside guest memory is refused without any write', (t) => {
  const m = machine();
  const r = m.disk.notify(1n << 40n);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'descriptor-unreadable');
    t.is(r.error.refusal?.kind, 'outside-memory');
  }
  const ev = m.m.vmm.log.byKind('dma-refused');
  t.is(ev.length, 1);
  t.is(ev[0]!.frame, -1);
});

test('host-side backing access refuses sectors past the end (a host bug, so it throws)', (t) => {
  const m = machine();
  t.throws(() => m.disk.readSectors(2047, 2), { message: /outside the disk's 2048 sectors/ });
  t.throws(() => m.disk.writeSectors(0, new Uint8Array(100)), { message: /not a whole number of sectors/ });
});

test('protected mode: the disk works on shared pages and is refused on private ones', async (t) => {
  const m = bootSynthetic({ protectedMemory: true });
  const disk = m.vmm.devices.disk;
  const mem = m.vmm.core.memory;
  disk.writeSectors(0, new Uint8Array(512).fill(0x42));
  // The driver shares its descriptor/status page and one bounce buffer (as swiotlb does).
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, DESC, 1n, BigInt(KVM_MAP_GPA_RANGE.DECRYPTED)), 0);
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, BUF, 1n, BigInt(KVM_MAP_GPA_RANGE.DECRYPTED)), 0);
  mem.write(gpa(DESC), encodeVirtioBlkRequest({ type: VIRTIO_BLK_T.IN, sector: 0n, dataGpa: BUF, dataLen: 512, statusGpa: STATUS }));
  t.true(disk.notify(DESC).ok);
  t.is(mem.read(gpa(BUF), 1)[0], 0x42);
  const priv = BUF + 0x1000n;
  mem.write(gpa(DESC), encodeVirtioBlkRequest({ type: VIRTIO_BLK_T.IN, sector: 0n, dataGpa: priv, dataLen: 512, statusGpa: STATUS }));
  const r = disk.notify(DESC);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.refusal?.kind, 'private');
    t.is(r.error.status, VIRTIO_BLK_S.IOERR);
  }
  t.is(mem.read(gpa(priv), 1)[0], 0);
  t.like(m.vmm.ownAudit.records()[0], { event: 'dma-refused', device: 'virtio-blk', direction: 'to-guest', refusal: 'private' });
});
