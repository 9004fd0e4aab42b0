/**
 * Attack (dma-during-module-verification): a time-of-check-to-time-of-use attack through a
 * device. The attacker stages shellcode on the virtio-blk disk, starts loading the genuine
 * crc7 and, while KVM_HC_HEKI_LOAD_MODULE waits for the verifier, submits a disk READ over the
 * module's text frame; after the load it tries again.
 * Expected stop: during the verification the frame is FROZEN and the DMA port refuses it
 * (`dma-refused` event and audit record, refusal `frozen`), so the verifier's snapshot is what
 * becomes executable; the module loads (audit ok=true) with exactly the signed bytes; the later
 * DMA is refused as `immutable`.
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, gpaOf, loadedModule, memAt, verdicts } from '../helpers/attack-run.ts';

needsFixtures(test)('disk DMA into a module under verification is refused; the signed bytes load', async (t) => {
  const { report, after } = await attackOnRealKernel('dma-during-module-verification', {
    after: (m) => {
      const text = loadedModule(m, 'crc7').image.sections.find((s) => s.name === '.text')!;
      const gpa = gpaOf(m, text.addr);
      return {
        gpa,
        now: memAt(m, gpa, text.size),
        signed: text.bytes,
        events: m.vmm.log.byKind('dma-refused'),
        trail: m.audit.records().map((r) => `${String(r['event'])}:${String(r['kind'] ?? r['refusal'])}`),
        loads: verdicts(m, 'module-load'),
      };
    },
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^DMA refused: frame 0x[0-9a-f]+ is FROZEN/);
  t.deepEqual(after.now, after.signed);
  t.is(after.events.length, 2);
  t.like(after.events[0], { direction: 'to-guest', gpa: after.gpa & ~0xfffn, refusal: 'frozen' });
  t.like(after.events[1], { direction: 'to-guest', gpa: after.gpa & ~0xfffn, refusal: 'immutable' });
  t.like(after.loads[0], { ok: true, applied: true, subject: 'crc7' });
  // One trail, in order: the refusal during the verification comes before the verdict (then
  // the end of crc7's init, authenticated too, before the later DMA).
  t.deepEqual(after.trail.slice(-4), ['dma-refused:frozen', 'verdict:module-load', 'verdict:module-init-free', 'dma-refused:immutable']);
});
