/**
 * Attack (vmm-reads-private-memory), on the real kernel through the catalogue's runner (the
 * synthetic-machine test of the same attack is attack-vmm-reads-private-memory.test.ts): the
 * machine runs in protected-memory mode; the guest keeps a secret in a private page and shares
 * one bounce page with KVM_HC_MAP_GPA_RANGE. The host then reads the private page through its
 * snapshot, migration and debug copy paths, and uses the disk as a side door (a virtio-blk
 * WRITE whose data buffer is the private page).
 * Expected stop: every host copy of the private page fails loudly (`private-page`), copies
 * nothing, and is logged (`host-access-refused` events) and audited; the disk write is refused
 * by the DMA port (`dma-refused`, refusal `private`) and the secret never reaches the disk. The
 * shared page reads fine, so the copy paths work.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel } from '../helpers/attack-run.ts';
import { GUEST_SECRET, STAGING_SECTOR } from '../../guest/attacks/host-side.ts';

needsFixtures(test)('the host cannot read the private page by any copy path or through the disk', async (t) => {
  const { report, after } = await attackOnRealKernel('vmm-reads-private-memory', {
    after: (m) => ({
      protectedMode: m.vmm.hostMemory.protected,
      reads: m.vmm.log.byKind('host-access-refused'),
      dma: m.vmm.log.byKind('dma-refused'),
      audit: m.audit.records().filter((r) => r['event'] === 'host-access-refused' || r['event'] === 'dma-refused'),
      sector: m.vmm.devices.disk.readSectors(Number(STAGING_SECTOR), 1),
    }),
  });
  t.true(report.stopped, report.detail);
  t.true(after.protectedMode);
  t.regex(report.stop, /^every host copy of the private page refused/);
  t.regex(report.detail, /the host reads the shared page: "shared data"/);
  t.deepEqual(
    after.reads.map((e) => e.path),
    ['snapshot', 'migration', 'debug'],
  );
  for (const e of after.reads) t.like(e, { access: 'read', len: GUEST_SECRET.length });
  t.is(after.dma.length, 1);
  t.like(after.dma[0], { device: 'virtio-blk', direction: 'from-guest', refusal: 'private', gpa: after.reads[0]!.gpa });
  t.deepEqual(
    after.audit.map((r) => r['event']),
    ['host-access-refused', 'host-access-refused', 'host-access-refused', 'dma-refused'],
  );
  for (const r of after.audit) t.regex(String(r['reason']), /private guest memory/);
  t.true(
    after.sector.every((b) => b === 0),
    'nothing reached the disk',
  );
  t.false(report.detail.includes('BEGIN PRIVATE KEY'), 'the secret appears nowhere in the report');
});
