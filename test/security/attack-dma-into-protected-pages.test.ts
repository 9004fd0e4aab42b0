/**
 * Attack: DMA from the VMM's emulated disk into protected kernel memory (Rick Edgecombe's
 * objection to Heki: device DMA is done by the host and bypasses the EPT).
 *
 * The guest kernel is compromised after heki_late_init locked it. It cannot write its text or
 * rodata itself (the EPT refuses), so it asks the disk to do it: it stores a payload on the
 * disk, then submits a virtio-blk READ whose data buffer is the locked text (or rodata) page.
 * A second variant aims the DMA at a module's pages while the verifier is looking at them
 * (frozen), to change the bytes between the verifier's look and the EPT update.
 *
 * Expected stop: the device's DMA port checks every page against the EPT before any byte
 * moves; the read is refused: no byte of the target changes, the status byte says
 * VIRTIO_BLK_S_IOERR, and the refusal is in the VMM's event log (`dma-refused`) and in the
 * audit log (the VMM's own, or the core's once a verifier is attached).
 */
import { gpa as physAddr } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, PTE, bootSynthetic, lockSyntheticKernel } from '../helpers/synthetic-machine.ts';
import { VIRTIO_BLK_S, VIRTIO_BLK_T, encodeVirtioBlkRequest } from '../../shared/virtio-blk.ts';
import { HC, MEM_ATTR } from '../../shared/abi.ts';
import { encodeModuleDesc } from '../../shared/heki-descriptors.ts';
import { PROTOCOL_VERSION } from '../../shared/protocol.ts';
import { AuditLog } from '../../hypervisor/audit/audit-log.ts';
import type { VirtioBlkError } from '../../hypervisor/vmm/devices/virtio-blk.ts';

const DESC = 0x70_0000n;
const STATUS = 0x70_0100n;
const STAGING = 0x71_0000n;
const SHELLCODE = Uint8Array.from({ length: 512 }, (_, i) => (i % 2 === 0 ? 0xcc : 0x90));

for (const target of ['text', 'rodata'] as const) {
  test(`a disk read into locked kernel ${target} is refused: no byte changes, IOERR, event and audit record`, async (t) => {
    const m = bootSynthetic();
    t.is(await lockSyntheticKernel(m), 0);
    const mem = m.vmm.core.memory;
    const disk = m.vmm.devices.disk;
    const gpa = LAYOUT[target];

    // Step 1 (allowed): the attacker stages its payload on the disk from a writable page.
    mem.write(physAddr(STAGING), SHELLCODE);
    mem.write(physAddr(DESC), encodeVirtioBlkRequest({ type: VIRTIO_BLK_T.OUT, sector: 8n, dataGpa: STAGING, dataLen: 512, statusGpa: STATUS }));
    t.true(disk.notify(DESC).ok);

    // Step 2 (the attack): read it back over the locked page.
    const before = mem.read(physAddr(gpa), 4096);
    mem.write(physAddr(DESC), encodeVirtioBlkRequest({ type: VIRTIO_BLK_T.IN, sector: 8n, dataGpa: gpa, dataLen: 512, statusGpa: STATUS }));
    const r = disk.notify(DESC);

    t.false(r.ok, 'the DMA must be refused');
    const e = (r as { ok: false; error: VirtioBlkError }).error;
    t.is(e.kind, 'dma-refused');
    t.is(e.refusal?.kind, 'immutable');
    t.regex(e.message, /virtio-blk DMA write of 512 bytes at 0x[0-9a-f]+ refused: frame 0x[0-9a-f]+ is IMMUTABLE in the EPT/);
    t.deepEqual(mem.read(physAddr(gpa), 4096), before, `no byte of ${target} changed`);
    t.is(mem.read(physAddr(STATUS), 1)[0], VIRTIO_BLK_S.IOERR);

    const events = m.vmm.log.byKind('dma-refused');
    t.is(events.length, 1);
    t.like(events[0], { device: 'virtio-blk', direction: 'to-guest', gpa, len: 512, frame: Number(gpa >> 12n), refusal: 'immutable' });
    const audit = m.vmm.ownAudit.records();
    t.is(audit.length, 1);
    t.like(audit[0], {
      event: 'dma-refused',
      vm: 'vm0',
      device: 'virtio-blk',
      direction: 'to-guest',
      refusal: 'immutable',
      frame: Number(gpa >> 12n),
      gpa: `0x${gpa.toString(16)}`,
    });
  });
}

test('a disk read into module pages frozen under verification is refused (no TOCTOU through DMA)', async (t) => {
  const MOD_VA = 0xffff_ffff_c000_0000n;
  const MOD_TEXT = 0x80_0000n;
  const BLOB_VA = 0xffff_c900_1000_0000n;
  const BLOB = 0x91_0000n;
  const MOD_DESC = 0x90_0000n;
  const m = bootSynthetic();
  const mem = m.vmm.core.memory;
  const disk = m.vmm.devices.disk;
  const audit = AuditLog.inMemory();
  let duringVerify: ReturnType<typeof disk.notify> | undefined;
  let textDuringVerify: Uint8Array | undefined;
  m.vmm.core.attachVerifier({
    vm: 'vm0',
    audit,
    kernelRegions: [],
    port: {
      async verify(r) {
        // While the verifier looks, the attacker rings the doorbell to overwrite the module text.
        mem.write(physAddr(DESC), encodeVirtioBlkRequest({ type: VIRTIO_BLK_T.IN, sector: 8n, dataGpa: MOD_TEXT, dataLen: 512, statusGpa: STATUS }));
        duringVerify = disk.notify(DESC);
        textDuringVerify = mem.read(physAddr(MOD_TEXT), 16);
        return {
          v: PROTOCOL_VERSION,
          id: 1,
          ok: r.kind === 'module-load',
          reason: 'ok',
          plugins: ['stub'],
          grants: [{ shndx: 1, permissions: MEM_ATTR.READ | MEM_ATTR.EXEC | MEM_ATTR.IMMUTABLE }],
        };
      },
    },
  });
  disk.writeSectors(8, SHELLCODE);
  m.pt.map(MOD_VA, MOD_TEXT, PTE.RW | PTE.NX);
  m.pt.map(BLOB_VA, BLOB, PTE.RW | PTE.NX);
  const code = Uint8Array.of(0x55, 0x48, 0x89, 0xe5, 0xc3);
  mem.write(physAddr(MOD_TEXT), code);
  mem.write(physAddr(BLOB), new TextEncoder().encode('SIGNED-IMAGE\0mod0'));
  mem.write(
    physAddr(MOD_DESC),
    encodeModuleDesc({ imageGva: BLOB_VA, imageLen: 12, nameGva: BLOB_VA + 13n, nameLen: 4, sections: [{ shndx: 1, gva: MOD_VA, size: code.length }] }),
  );

  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, MOD_DESC), 0);
  t.truthy(duringVerify);
  t.false(duringVerify!.ok);
  if (duringVerify && !duringVerify.ok) t.is(duringVerify.error.refusal?.kind, 'frozen');
  t.deepEqual([...textDuringVerify!.subarray(0, 5)], [...code], 'the bytes under verification did not change');
  t.deepEqual([...mem.read(physAddr(MOD_TEXT), 5)], [...code], 'the verified bytes are the bytes made executable');
  // One trail: the DMA refusal, then the verdict, both in the core's audit log.
  t.deepEqual(
    audit.records().map((r) => r['event']),
    ['dma-refused', 'verdict'],
  );
  t.like(audit.records()[0], { refusal: 'frozen', device: 'virtio-blk' });
  t.is(m.vmm.log.byKind('dma-refused').length, 1);

  // After the load the text is IMMUTABLE: the same DMA is refused again, as immutable.
  mem.write(physAddr(DESC), encodeVirtioBlkRequest({ type: VIRTIO_BLK_T.IN, sector: 8n, dataGpa: MOD_TEXT, dataLen: 512, statusGpa: STATUS }));
  const after = disk.notify(DESC);
  t.false(after.ok);
  if (!after.ok) t.is(after.error.refusal?.kind, 'immutable');
  t.deepEqual([...mem.read(physAddr(MOD_TEXT), 5)], [...code]);
});
