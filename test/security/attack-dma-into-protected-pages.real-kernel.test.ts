/**
 * Attack (dma-into-protected-pages), on the real kernel through the catalogue's runner (the
 * synthetic-machine test of the same attack is attack-dma-into-protected-pages.test.ts): the
 * compromised kernel stages shellcode on the virtio-blk disk, then submits disk READs whose
 * data buffers are the locked text page of commit_creds and the .rodata page of sys_call_table,
 * so that the host's device DMA writes them (DMA bypasses the guest's EPT checks).
 * Expected stop: the device's DMA port checks the EPT first and refuses (the frames are
 * IMMUTABLE): nothing moves, the status byte says IOERR, a `dma-refused` event per request in
 * the VMM's log and a `dma-refused` record in the audit log; both pages unchanged.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, gpaOf, memAt, sym } from '../helpers/attack-run.ts';

needsFixtures(test)('disk DMA into locked text and rodata is refused; both pages unchanged', async (t) => {
  const { report, before, after } = await attackOnRealKernel('dma-into-protected-pages', {
    before: (m) => {
      const pages = [gpaOf(m, sym(m, 'commit_creds')) & ~0xfffn, gpaOf(m, sym(m, 'sys_call_table')) & ~0xfffn];
      return { pages, bytes: pages.map((p) => memAt(m, p, 4096)) };
    },
    after: (m, b) => ({
      bytes: b.pages.map((p) => memAt(m, p, 4096)),
      events: m.vmm.log.byKind('dma-refused'),
      audit: m.audit.records().filter((r) => r['event'] === 'dma-refused'),
      disk: m.vmm.devices.disk.stats,
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^DMA refused: frame 0x[0-9a-f]+ is IMMUTABLE in the EPT; status IOERR; dma-refused event \(virtio-blk to-guest/);
  t.deepEqual(after.bytes, before.bytes);
  t.is(after.events.length, 2);
  after.events.forEach((e, i) =>
    t.like(e, { device: 'virtio-blk', direction: 'to-guest', gpa: before.pages[i], len: 512, frame: Number(before.pages[i]! >> 12n), refusal: 'immutable' }),
  );
  t.is(after.audit.length, 2);
  after.audit.forEach((r, i) => t.like(r, { event: 'dma-refused', device: 'virtio-blk', refusal: 'immutable', gpa: `0x${before.pages[i]!.toString(16)}` }));
  t.like(after.disk, { requests: 3, completed: 1, failed: 2 }, 'only the staging write completed');
});
