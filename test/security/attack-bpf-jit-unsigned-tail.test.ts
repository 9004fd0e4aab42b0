/**
 * Attack (bpf-jit-unsigned-tail): load a correctly signed 64-byte JIT image, with extra
 * shellcode written into the unsigned tail of its page (which would become executable with it).
 * Expected stop: the core refuses before any verification (the bytes after the image in its
 * last frame are not zero): -KVM_EINVAL, no verifier request, no audit record. No code image is
 * recorded by the core and the image's frame is not executable (a fetch through a fresh
 * executable alias ends in an `ept-violation` exit).
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('bpf-jit-unsigned-tail: the JIT image is refused and never executable', async (t) => {
  const { report, after } = await attackOnRealKernel('bpf-jit-unsigned-tail', {
    after: (m) => ({
      records: verdicts(m, 'code-load'),
      denials: m.vmm.log.byReason('heki-denial').map((e) => e.exit.denial),
      images: m.vmm.core.auth?.codeImages.size,
      probed: m.vmm.log
        .byReason('ept-violation')
        .filter((e) => e.exit.access === 'fetch')
        .map((e) => eptAt(m, e.exit.gpa)),
    }),
  });
  t.true(report.stopped, report.detail);
  t.regex(report.stop, /^-KVM_EINVAL from KVM_HC_HEKI_LOAD_CODE/);
  t.is(after.records.length, 0, 'refused before the verifier was asked');
  t.is(after.denials.length, 0);
  t.is(after.images, 0);
  t.is(after.probed.length, 1);
  t.is(after.probed[0]! & (EPT_XS | EPT_XU), 0);
});
