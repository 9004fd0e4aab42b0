/**
 * The core's freeze, snapshot, verify, apply, audit steps, with an in-process stub in place of
 * the verifier VM so that each step can be observed (the real worker is covered by the
 * integration tests).
 */
import { gfn, gpa, gva, gpaToGfn } from '../../shared/addr.ts';
import test from 'ava';
import { LAYOUT, bootSynthetic, lockSyntheticKernel, protect } from '../helpers/synthetic-machine.ts';
import { BLOB, BLOB_VA, DESC, MOD_DATA, MOD_TEXT, MOD_VA, grants, withVerifier } from '../helpers/stub-verifier-machine.ts';
import { HC, KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { encodePatchBatch, patchStatuses, PATCH_STATUS } from '../../shared/heki-descriptors.ts';
import type { Verdict, VerifyRequest } from '../../shared/protocol.ts';
import { EPT_R, EPT_W, EPT_XS, EPT_FROZEN, EPT_IMMUTABLE } from '../../hypervisor/ept/permissions.ts';

test('module load: the verifier sees frozen snapshots, and the grants are applied per section', async (t) => {
  let frozenDuringVerify = false;
  let guestWriteDuringVerify: boolean | undefined;
  const { m, audit, seen } = withVerifier((r) => {
    const ept = m.vmm.core.ept;
    frozenDuringVerify = (ept.get(gpaToGfn(gpa(MOD_TEXT))) & EPT_FROZEN) !== 0;
    guestWriteDuringVerify = m.cpu.write(gva(MOD_VA), Uint8Array.of(0xcc)).ok; // TOCTOU attempt
    return r.kind === 'module-load' ? { ok: true, reason: 'ok', grants } : { ok: false, reason: 'unexpected' };
  });
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, DESC), 0);
  t.true(frozenDuringVerify, 'frames are frozen while the verifier looks');
  t.false(guestWriteDuringVerify, 'the guest cannot change the bytes under verification');
  const req = seen[0] as Extract<VerifyRequest, { kind: 'module-load' }>;
  t.is(req.name, 'mod0');
  t.is(new TextDecoder().decode(req.image), 'SIGNED-IMAGE');
  t.deepEqual([...req.sections[0]!.bytes.subarray(0, 2)], [0x55, 0x48]);
  const ept = m.vmm.core.ept;
  t.is(ept.get(gpaToGfn(gpa(MOD_TEXT))) & (EPT_R | EPT_W | EPT_XS), EPT_R | EPT_XS);
  t.is(ept.get(gpaToGfn(gpa(MOD_DATA))) & (EPT_R | EPT_W | EPT_XS), EPT_R | EPT_W);
  t.is(ept.get(gpaToGfn(gpa(MOD_TEXT))) & EPT_FROZEN, 0, 'thawed after apply');
  t.is(audit.records().length, 1);
  t.like(audit.records()[0], { event: 'verdict', kind: 'module-load', subject: 'mod0', ok: true, applied: true });
});

test('module load denied: -KVM_EPERM, permissions unchanged, pages thawed, one audit record', async (t) => {
  const { m, audit } = withVerifier(() => ({ ok: false, reason: 'module-pkcs7: signature mismatch' }));
  const before = m.vmm.core.ept.get(gpaToGfn(gpa(MOD_TEXT)));
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, DESC), -KVM_STATUS.KVM_EPERM);
  t.is(m.vmm.core.ept.get(gpaToGfn(gpa(MOD_TEXT))), before);
  t.true(m.cpu.write(gva(MOD_VA), Uint8Array.of(0x90)).ok, 'the guest may write its data pages again');
  t.is(audit.records().length, 1);
  t.like(audit.records()[0], { ok: false, applied: false, reason: 'module-pkcs7: signature mismatch' });
  const d = m.vmm.log.byReason('heki-denial');
  t.like(d[0]!.exit.denial, { kind: 'verification', request: 'module-load', subject: 'mod0' });
});

test('text patch: written by the core at the verified site, statuses written back', async (t) => {
  const { m, audit } = withVerifier(() => ({ ok: true, reason: 'ok', items: [{ ok: true, reason: 'ok' }] }));
  const site = m.kva(LAYOUT.text);
  const batch = encodePatchBatch([{ kind: 'ftrace', site, oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00), newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4) }]);
  m.vmm.core.memory.write(gpa(DESC), batch);
  t.is(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, DESC), 0);
  t.deepEqual([...m.vmm.core.memory.read(gpa(LAYOUT.text), 5)], [0xe8, 1, 2, 3, 4]);
  t.deepEqual(patchStatuses(m.vmm.core.memory.read(gpa(DESC), batch.length)), [PATCH_STATUS.APPLIED]);
  t.like(audit.records()[0], { kind: 'text-patch', ok: true, applied: true, patches: 1 });
});

test('text patch: a site outside verified text is refused by the core without asking', async (t) => {
  const { m, seen, audit } = withVerifier(() => ({ ok: true, reason: 'ok', items: [{ ok: true, reason: 'ok' }] }));
  const batch = encodePatchBatch([{ kind: 'ftrace', site: m.kva(LAYOUT.data), oldBytes: Uint8Array.of(0x90), newBytes: Uint8Array.of(0xcc) }]);
  m.vmm.core.memory.write(gpa(DESC), batch);
  t.is(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, DESC), -KVM_STATUS.KVM_EPERM);
  t.is(seen.length, 0);
  t.deepEqual([...m.vmm.core.memory.read(gpa(LAYOUT.data), 1)], [0x90]);
  t.regex(String(audit.records()[0]!['reason']), /not in verified kernel or module text/);
});

test('text patch: one denied item leaves every site untouched (all or nothing)', async (t) => {
  const { m } = withVerifier(() => ({
    ok: false,
    reason: '1 of 2 denied',
    items: [
      { ok: true, reason: 'ok' },
      { ok: false, reason: 'wrong old bytes' },
    ],
  }));
  const site = m.kva(LAYOUT.text);
  const batch = encodePatchBatch([
    { kind: 'ftrace', site, oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00), newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4) },
    { kind: 'jump-label', site: site + 5n, oldBytes: Uint8Array.of(0xc3), newBytes: Uint8Array.of(0xcc) },
  ]);
  m.vmm.core.memory.write(gpa(DESC), batch);
  t.is(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, DESC), -KVM_STATUS.KVM_EPERM);
  t.deepEqual([...m.vmm.core.memory.read(gpa(LAYOUT.text), 6)], [0x0f, 0x1f, 0x44, 0x00, 0x00, 0xc3]);
  t.deepEqual(patchStatuses(m.vmm.core.memory.read(gpa(DESC), batch.length)), [PATCH_STATUS.NOT_APPLIED, PATCH_STATUS.DENIED]);
});

test('end of boot: the verifier sees the kernel text; afterwards PROTECT_MEMORY may only take permissions away', async (t) => {
  const { m, seen } = withVerifier(() => ({ ok: true, reason: 'text matches' }));
  t.is(await lockSyntheticKernel(m), 0);
  t.is(await m.cpu.vmcall(HC.HEKI_END_BOOT), 0);
  const req = seen[0] as Extract<VerifyRequest, { kind: 'kernel-text' }>;
  t.is(req.sections[0]!.name, '.text');
  t.deepEqual([...req.sections[0]!.bytes.subarray(0, 5)], [0x0f, 0x1f, 0x44, 0x00, 0x00]);
  t.is(await m.cpu.vmcall(HC.HEKI_END_BOOT), -KVM_STATUS.KVM_EPERM, 'boot ends once');
  const data = { pa: LAYOUT.data, epa: LAYOUT.data + 0x1000n };
  t.is(await protect(m, [{ ...data, permissions: MEM_ATTR.READ | MEM_ATTR.EXEC }], 0x5f_0000n), -KVM_STATUS.KVM_EPERM, 'no widening');
  t.is(await protect(m, [{ ...data, permissions: MEM_ATTR.READ }], 0x5f_0000n), 0, 'narrowing is fine');
});

test('end of boot refused: the default policy stops the VM', async (t) => {
  const { m } = withVerifier(() => ({ ok: false, reason: 'kernel-text: .text differs from the manifest' }));
  t.is(await m.cpu.vmcall(HC.HEKI_END_BOOT), -KVM_STATUS.KVM_EPERM);
  t.regex(m.vmm.core.stopped ?? '', /does not match the signed manifest/);
});

test('set memory: W+X is refused by the core; an allowed change is applied to the translated frames', async (t) => {
  const { m, seen } = withVerifier(() => ({ ok: true, reason: 'ok', items: [{ ok: true, reason: 'ok' }] }));
  t.is(await m.cpu.vmcall(HC.HEKI_SET_MEMORY, BLOB_VA, 1n, BigInt(MEM_ATTR.READ | MEM_ATTR.WRITE | MEM_ATTR.EXEC)), -KVM_STATUS.KVM_EINVAL);
  t.is(seen.length, 0);
  t.is(await m.cpu.vmcall(HC.HEKI_SET_MEMORY, BLOB_VA, 1n, BigInt(MEM_ATTR.READ)), 0);
  t.is(m.vmm.core.ept.get(gpaToGfn(gpa(BLOB))), EPT_R);
  const req = seen[0] as Extract<VerifyRequest, { kind: 'set-memory' }>;
  t.is(req.ranges[0]!.pageHashes[0]!.length, 64);
  t.deepEqual(req.ranges[0]!.frames, [Number(BLOB >> 12n)]);
});

test('without a verifier, authenticated hypercalls are not supported', async (t) => {
  const m = bootSynthetic();
  for (const nr of [HC.HEKI_END_BOOT, HC.HEKI_LOAD_MODULE, HC.HEKI_UNLOAD_MODULE, HC.HEKI_TEXT_PATCH, HC.HEKI_SET_MEMORY, HC.HEKI_LOAD_CODE]) {
    t.is(await m.cpu.vmcall(nr, DESC), -KVM_STATUS.KVM_EOPNOTSUPP);
  }
});

test('malformed descriptors are -KVM_EINVAL and reach no verifier', async (t) => {
  const { m, seen } = withVerifier(() => ({ ok: true, reason: 'ok' }));
  m.vmm.core.memory.write(gpa(0x92_0000n), new Uint8Array(4096).fill(0x41));
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, 0x92_0000n), -KVM_STATUS.KVM_EINVAL);
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, 0x92_0008n), -KVM_STATUS.KVM_EINVAL);
  t.is(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, 0x92_0000n), -KVM_STATUS.KVM_EINVAL);
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_CODE, 0x92_0000n), -KVM_STATUS.KVM_EINVAL);
  t.is(await m.cpu.vmcall(HC.HEKI_UNLOAD_MODULE, BLOB_VA + 13n, 4n), -KVM_STATUS.KVM_EINVAL, 'not loaded');
  t.is(seen.length, 0);
});

test('unload returns every page of the module to data-only', async (t) => {
  const { m, audit } = withVerifier((r) => (r.kind === 'module-load' ? { ok: true, reason: 'ok', grants } : { ok: true, reason: 'forgotten' }));
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, DESC), 0);
  t.is(await m.cpu.vmcall(HC.HEKI_UNLOAD_MODULE, BLOB_VA + 13n, 4n), 0);
  t.is(m.vmm.core.ept.get(gpaToGfn(gpa(MOD_TEXT))), EPT_R | EPT_W);
  const f = m.cpu.fetch(gva(MOD_VA), 1);
  t.false(f.ok, 'nothing stays executable');
  t.is(audit.records().length, 2);
});

test('module load: a granted frame with non-zero bytes outside the sections is refused', async (t) => {
  const { m, audit } = withVerifier(() => ({ ok: true, reason: 'ok', grants }));
  m.vmm.core.memory.write(gpa(MOD_TEXT + 100n), Uint8Array.of(0xcc)); // past the 10-byte text section
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, DESC), -KVM_STATUS.KVM_EPERM);
  t.is(m.vmm.core.ept.get(gpaToGfn(gpa(MOD_TEXT))) & EPT_XS, EPT_XS, 'still the default, not a grant');
  t.false(m.vmm.core.auth!.modules.has('mod0'));
  t.regex(String(audit.records()[0]!['note']), /non-zero padding in frame \d+ at offset 100/);
});

/** The end of init, with a stub that allows the load with `grants` and answers the end of init with `endGrants`. */
function endOfInit(endGrants: Verdict['grants'], ok = true): ReturnType<typeof withVerifier> {
  return withVerifier((r) =>
    r.kind === 'module-load'
      ? { ok: true, reason: 'ok', grants }
      : r.kind === 'module-init-free'
        ? { ok, reason: ok ? 'init returned' : 'no', ...(endGrants ? { grants: endGrants } : {}) }
        : { ok: false, reason: 'unexpected' },
  );
}

test('end of init: sections granted R+W are released (data-only, out of the record and code map), R+IMMUTABLE ones sealed', async (t) => {
  // Section 1 plays the init text, section 2 ro_after_init.
  const { m, audit, seen } = endOfInit([
    { shndx: 1, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE },
    { shndx: 2, permissions: MEM_ATTR.READ | MEM_ATTR.IMMUTABLE },
  ]);
  t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, DESC), 0);
  t.is(await m.cpu.vmcall(HC.HEKI_FREE_MODULE_INIT, BLOB_VA + 13n, 4n), 0);
  t.like(seen[1], { kind: 'module-init-free', name: 'mod0' });
  const ept = m.vmm.core.ept;
  t.is(ept.get(gfn(Number(MOD_TEXT >> 12n))), EPT_R | EPT_W, 'the released init text is data-only');
  t.is(ept.get(gfn(Number(MOD_DATA >> 12n))), EPT_R | EPT_IMMUTABLE, 'ro_after_init is sealed');
  t.false(m.cpu.fetch(gva(MOD_VA), 1).ok, 'the freed init text does not execute');
  const rec = m.vmm.core.auth!.modules.get('mod0')!;
  t.deepEqual([...rec.frames.keys()], [gfn(Number(MOD_DATA >> 12n))]);
  t.deepEqual([...rec.sections!.keys()], [2]);
  t.is(rec.textPages.size, 0);
  t.false(m.vmm.core.auth!.ownsFrame(gfn(Number(MOD_TEXT >> 12n))), 'a later load may use the released frame');
  // A patch into the freed init text is refused by the core, without asking.
  m.vmm.core.memory.write(
    gpa(DESC),
    encodePatchBatch([{ kind: 'ftrace', site: MOD_VA + 4n, oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0x00, 0x00), newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4) }]),
  );
  t.is(await m.cpu.vmcall(HC.HEKI_TEXT_PATCH, DESC), -KVM_STATUS.KVM_EPERM);
  t.is(seen.length, 2);
  t.like(audit.records()[1], { kind: 'module-init-free', ok: true, applied: true, released: 1, sealed: 1, textPages: 1 });
});

test('end of init: a grant that is neither release nor seal, a section the module lacks, a denial or an unknown module change nothing', async (t) => {
  for (const [endGrants, ok, why] of [
    [[{ shndx: 1, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE | MEM_ATTR.EXEC }], true, /neither a release \(R\+W\) nor a seal/],
    [[{ shndx: 9, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE }], true, /section 9, which module mod0 does not have/],
    [undefined, false, /^no$/],
  ] as const) {
    const { m, audit } = endOfInit(endGrants && [...endGrants], ok);
    t.is(await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, DESC), 0);
    const before = [MOD_TEXT, MOD_DATA].map((pa) => m.vmm.core.ept.get(gfn(Number(pa >> 12n))));
    t.is(await m.cpu.vmcall(HC.HEKI_FREE_MODULE_INIT, BLOB_VA + 13n, 4n), -KVM_STATUS.KVM_EPERM);
    t.deepEqual(
      [MOD_TEXT, MOD_DATA].map((pa) => m.vmm.core.ept.get(gfn(Number(pa >> 12n)))),
      before,
      'no frame changed',
    );
    t.is(m.vmm.core.auth!.modules.get('mod0')!.frames.size, 2, 'the module keeps every frame');
    t.like(audit.records()[1], { kind: 'module-init-free', ok, applied: false });
    t.regex(String(audit.records()[1]![ok ? 'note' : 'reason']), why);
  }
  const { m } = endOfInit([]);
  t.is(await m.cpu.vmcall(HC.HEKI_FREE_MODULE_INIT, BLOB_VA + 13n, 4n), -KVM_STATUS.KVM_EINVAL, 'not loaded');
});
