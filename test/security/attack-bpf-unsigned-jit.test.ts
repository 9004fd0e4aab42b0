/**
 * Attack (bpf-unsigned-jit): load an unsigned eBPF JIT image (shellcode) through the kernel's
 * BPF JIT loader and have it made executable.
 * Expected stop: the verifier's code-load plugin denies (signed by unknown key
 * 0000000000000000): -KVM_EPERM, a `heki-denial` exit (verification of code-load), an audit
 * record ok=false. No code image is recorded by the core and the image's frame is not
 * executable (a fetch through a fresh executable alias ends in an `ept-violation` exit).
 */
import test from 'ava';
import { needsFixtures } from '../helpers/fixtures.ts';
import { attackOnRealKernel, eptAt, verdicts } from '../helpers/attack-run.ts';
import { EPT_XS, EPT_XU } from '../../hypervisor/ept/permissions.ts';

needsFixtures(test)('bpf-unsigned-jit: the JIT image is refused and never executable', async (t) => {
  const { report, after } = await attackOnRealKernel('bpf-unsigned-jit', {
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
  t.regex(report.stop, /^-KVM_EPERM from KVM_HC_HEKI_LOAD_CODE; heki-denial exit \(verification of code-load\)/);
  t.is(after.records.length, 1);
  t.like(after.records[0], { ok: false, applied: false });
  t.regex(String(after.records[0]!['reason']), /^code-load: bpf-jit "attack_unsigned": signed by unknown key 0000000000000000/);
  t.like(after.denials[0], { kind: 'verification', request: 'code-load' });
  t.is(after.images, 0);
  t.is(after.probed.length, 1);
  t.is(after.probed[0]! & (EPT_XS | EPT_XU), 0);
});
