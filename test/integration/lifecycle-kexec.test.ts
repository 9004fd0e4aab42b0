/**
 * kexec on the real kernel (docs/lifecycle.md): the guest loads the new kernel and its signed
 * manifest (KVM_HC_HEKI_KEXEC_LOAD), the verifier checks both, the VMM stages the copies it
 * checked, and on KVM_HC_HEKI_KEXEC resets the VM into them: the verifier takes the new
 * manifest (checked again), the core the new kernel's regions, and the new kernel boots and
 * locks itself. The crash kernel follows the same rule and runs only on a panic. Through
 * `heki run` too, with image and manifest files made as a vendor would (`heki manifest`).
 */
import test, { type TestFn } from 'ava';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { needsFixtures, fixtures, loadFixtureKernel } from '../helpers/fixtures.ts';
import { disposeForkBases, forkRealMachine } from '../helpers/real-machine.ts';
import { CR4 } from '../../shared/x86/cpu.ts';
import { buildManifestBody, signManifest } from '../../tools/manifest-builder.ts';
import { generateEd25519KeyPair } from '../../shared/crypto/ed25519.ts';
import { formatPublicKeyFile } from '../../tools/key-files.ts';
import type { ExportedVmState } from '../../verifier-vm/vm-state.ts';
import { main } from '../../cli/main.ts';
import type { CliIo } from '../../cli/command.ts';

// Serial: each test runs a real kernel; several at once on one main thread make the
// verifier's answers late on a loaded machine.
const realTest = needsFixtures(test.serial as unknown as TestFn);
// Each test starts from its own fork of one booted machine (none tests the first boot itself).
test.after.always(disposeForkBases);

realTest('kexec: verified, staged, then the VM is reset into the new kernel, which locks itself', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const r = await m.kexec({});
  t.is(r.outcome, 'allowed', r.reason);
  t.regex(
    r.reason,
    /^reset into the kexec kernel linux-6\.1\.0-56-amd64 \(image SHA-256 [0-9a-f]{64}, verdict \d+\); every pin and lock cleared for its boot; then booted: /,
  );
  const kinds = m.audit.records().map((x) => (x['event'] === 'lifecycle' ? `lifecycle:${String(x['type'])}` : String(x['kind'])));
  const at = kinds.indexOf('kexec-image');
  t.deepEqual(kinds.slice(at, at + 4), ['kexec-image', 'kernel-manifest', 'lifecycle:kexec', 'kernel-text'], 'verify, install the manifest, reset, boot check');
  t.like(m.audit.records()[at], { ok: true, applied: true, slot: 'kexec' });
  // The verifier decides this VM's requests against the kexec'd kernel's manifest now.
  const v = (await m.link.exportVm('vm0')) as ExportedVmState;
  t.true(v.bootVerified);
  t.truthy(v.manifest);
  t.not(v.manifest, undefined);
  t.is(m.vmm.core.pins.get(4), CR4.SMEP | CR4.SMAP | CR4.UMIP);
  t.true(m.vmm.core.auth!.bootEnded);
  t.is(m.vmm.staged('kexec'), undefined, 'the slot is consumed');
  const f = await m.ftrace('enable', 'tcp_*');
  t.is(f.outcome, 'allowed', `the new kernel patches against its manifest: ${f.reason}; ${JSON.stringify(m.audit.records().at(-1))}`);
  t.is((await m.write('_stext+0x10', Uint8Array.of(0x90), 'kernel')).outcome, 'denied');
});

realTest('the crash kernel: loaded and verified, not run by kexec, run by a panic', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const load = await m.kexec({ crash: true });
  t.is(load.outcome, 'allowed', load.reason);
  t.truthy(m.vmm.staged('crash'));
  t.is(m.vmm.staged('kexec'), undefined);
  t.is((await m.hypercall(22, [])).outcome, 'denied', 'KVM_HC_HEKI_KEXEC runs only the kexec slot');
  t.is(m.vmm.core.stopped, undefined);
  const p = await m.panic();
  t.is(p.outcome, 'allowed', p.reason);
  t.regex(p.reason, /^panic: reset into the crash kernel/);
  t.like(
    m.audit
      .records()
      .filter((x) => x['event'] === 'lifecycle')
      .at(-1),
    { type: 'crash', result: 'kexec', slot: 'crash' },
  );
  t.is((await m.writeCr(4, { clear: CR4.SMEP })).outcome, 'denied', 'the crash kernel pinned itself');
});

realTest('a panic without a crash kernel stops the VM', async (t) => {
  const m = await forkRealMachine();
  t.teardown(() => m.dispose());
  const p = await m.panic();
  t.is(p.outcome, 'allowed');
  t.regex(p.reason, /no crash kernel is loaded: the VM is stopped/);
  t.regex(m.vmm.core.stopped ?? '', /panicked/);
  t.is((await m.write('init_task', Uint8Array.of(1), 'kernel')).outcome, 'denied');
});

realTest('heki run: a kexec step with image and manifest files; one signed by a key the scenario does not trust is refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'heki-kexec-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const image = await loadFixtureKernel();
  const vmlinuz = new Uint8Array(readFileSync(fixtures.vmlinuz));
  const body = buildManifestBody(image, { kernel: 'linux-6.1.0-56-amd64', vmlinuzSha256: createHash('sha256').update(vmlinuz).digest('hex') });
  const vendor = generateEd25519KeyPair();
  writeFileSync(join(dir, 'vendor.pub.json'), formatPublicKeyFile(vendor.publicKey, 'kernel-vendor'));
  writeFileSync(join(dir, 'vmlinuz.manifest.json'), signManifest(body, vendor));
  writeFileSync(join(dir, 'other.manifest.json'), signManifest(body, generateEd25519KeyPair()));
  writeFileSync(
    join(dir, 'kexec.yaml'),
    `name: kexec
kernel: real
vmlinuz: ${fixtures.vmlinuz}
system-map: ${fixtures.systemMap}
keys: { pubkeys: [vendor.pub.json] }
steps:
  - boot: {}
  - kexec: { image: ${fixtures.vmlinuz}, manifest: other.manifest.json, expect: denied }
  - kexec: { image: ${fixtures.vmlinuz}, manifest: vmlinuz.manifest.json, system-map: ${fixtures.systemMap}, expect: allowed }
  - write-cr: { cr: 4, clear: SMEP, expect: denied }
`,
  );
  let out = '';
  let err = '';
  const io: CliIo = { out: (s) => void (out += s), err: (s) => void (err += s), cwd: dir };
  const code = await main(['run', 'kexec.yaml', '--json'], io);
  t.is(code, 0, `${out}${err}`);
  const steps = (JSON.parse(out) as { steps: Array<{ reason: string }> }).steps;
  t.regex(steps[1]!.reason, /manifest signed by unknown key/);
  t.regex(steps[2]!.reason, /^reset into the kexec kernel/);
});
