/**
 * The core's Hyper-V personality (hypervisor/hyperv/): the hypercall codes a VTL0 guest may
 * and may not issue, the VSM function table's end-of-boot rules, LVBS's CR pin masks, and
 * that its module functions reach the same authenticated handler as KVM's (one audit record
 * per change, module tokens). With a stub verifier (test/helpers/stub-verifier-machine.ts).
 */
import test from 'ava';
import { LAYOUT, bootSynthetic } from '../helpers/synthetic-machine.ts';
import { DESC, MOD_TEXT, grants, withVerifier } from '../helpers/stub-verifier-machine.ts';
import { CR0_PIN_MASK, HVCALL, HV_STATUS, VSM_ERRNO, VSM_FUNC, VSM_FUNC_PATCH_TEXT } from '../../shared/hv-vsm-abi.ts';
import { HC, MEM_ATTR } from '../../shared/abi.ts';
import { CR0, CR4 } from '../../shared/x86/cpu.ts';
import { CPUID_LEAF, hypervisorSignature } from '../../shared/x86/cpuid.ts';
import { encodePageList } from '../../shared/page-list.ts';
import { EPT_R, EPT_W, EPT_XS } from '../../hypervisor/ept/permissions.ts';
import { cpuidHypervisor } from '../../guest/heki/cpuid-hypervisor.ts';
import { gfn, gpa } from '../../shared/addr.ts';

const hyperv = { hypervisor: 'hyperv' } as const;
const vtlCall = (m: ReturnType<typeof bootSynthetic>, fn: number, a1 = 0n, a2 = 0n, a3 = 0n) => m.cpu.vmcall(HVCALL.VTL_CALL, BigInt(fn), a1, a2, a3);

test('CPUID 0x40000000 says "Microsoft Hv" on hyperv and "KVMKVMKVM" by default; the guest reads which', (t) => {
  const hv = bootSynthetic(hyperv);
  const kvm = bootSynthetic();
  t.is(hypervisorSignature(hv.cpu.cpuid(CPUID_LEAF.KVM_SIGNATURE)), 'Microsoft Hv');
  t.is(hypervisorSignature(kvm.cpu.cpuid(CPUID_LEAF.KVM_SIGNATURE)), 'KVMKVMKVM\0\0\0');
  t.is(cpuidHypervisor(hv.cpu), 'hyperv');
  t.is(cpuidHypervisor(kvm.cpu), 'kvm');
});

test('VTL0 cannot issue VtlReturn or ModifyVtlProtectionMask, an unknown code is refused, KVM numbers mean nothing', async (t) => {
  const m = bootSynthetic(hyperv);
  const text = gfn(Number(LAYOUT.text >> 12n));
  const before = m.vmm.core.ept.get(text);
  t.is(await m.cpu.vmcall(HVCALL.VTL_RETURN), HV_STATUS.ACCESS_DENIED);
  t.is(await m.cpu.vmcall(HVCALL.MODIFY_VTL_PROTECTION_MASK, LAYOUT.text, 0xfn), HV_STATUS.ACCESS_DENIED);
  t.is(await m.cpu.vmcall(0x7777), HV_STATUS.INVALID_HYPERCALL_CODE);
  // KVM_HC_PROTECT_MEMORY (14) is no Hyper-V hypercall: a guest cannot reach the KVM table.
  m.vmm.core.memory.write(
    gpa(LAYOUT.pageList),
    encodePageList([{ pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE | MEM_ATTR.EXEC }], 0n),
  );
  t.is(await m.cpu.vmcall(HC.PROTECT_MEMORY, LAYOUT.pageList), HV_STATUS.INVALID_HYPERCALL_CODE);
  t.is(m.vmm.core.ept.get(text), before);
});

test('a VSM function ID outside 0x1FFE0..0x1FFEA (PATCH_TEXT included) answers -EINVAL', async (t) => {
  const m = bootSynthetic(hyperv);
  t.is(await vtlCall(m, VSM_FUNC_PATCH_TEXT), -VSM_ERRNO.EINVAL);
  t.is(await vtlCall(m, 0x1ffdf), -VSM_ERRNO.EINVAL);
  t.is(await vtlCall(m, VSM_FUNC.LOAD_KDATA, LAYOUT.pageList, 1n), -VSM_ERRNO.EOPNOTSUPP);
});

test('LOCK_REGS pins the set bits of LVBS masks (CR0 PE|WP|PG, CR4 all but MCE|PGE|PCE|VMXE); clearing WP then faults', async (t) => {
  const m = bootSynthetic(hyperv);
  t.is(await vtlCall(m, VSM_FUNC.LOCK_REGS), 0);
  t.is(m.vmm.core.pins.get(0), CR0_PIN_MASK);
  t.is(m.vmm.core.pins.get(4), CR4.PAE | CR4.SMEP | CR4.SMAP | CR4.UMIP, 'PGE is set but not pinned');
  const w = m.cpu.writeCr(0, m.cpu.readCr(0) & ~CR0.WP);
  t.false(w.ok);
  t.not(m.cpu.readCr(0) & CR0.WP, 0n);
});

test('after SIGNAL_END_OF_BOOT, LOCK_REGS and PROTECT_MEMORY are refused with -EINVAL and change nothing', async (t) => {
  const { m } = withVerifier((r) => (r.kind === 'kernel-text' ? { ok: true, reason: 'ok' } : { ok: false, reason: 'unexpected' }), hyperv);
  t.is(await vtlCall(m, VSM_FUNC.SIGNAL_END_OF_BOOT), 0);
  t.true(m.vmm.core.auth?.bootEnded);
  const text = gfn(Number(LAYOUT.text >> 12n));
  const before = m.vmm.core.ept.get(text);
  m.vmm.core.memory.write(
    gpa(LAYOUT.pageList),
    encodePageList([{ pa: LAYOUT.text, epa: LAYOUT.text + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE }], 0n),
  );
  t.is(await vtlCall(m, VSM_FUNC.PROTECT_MEMORY, LAYOUT.pageList, 1n), -VSM_ERRNO.EINVAL);
  t.is(await vtlCall(m, VSM_FUNC.LOCK_REGS), -VSM_ERRNO.EINVAL);
  t.is(m.vmm.core.ept.get(text), before);
  t.is(m.vmm.core.pins.get(0), 0n);
});

test('PROTECT_MEMORY before end of boot is the core handler: W^X refused, a good list applied', async (t) => {
  const m = bootSynthetic(hyperv);
  const data = gfn(Number(LAYOUT.data >> 12n));
  m.vmm.core.memory.write(
    gpa(LAYOUT.pageList),
    encodePageList([{ pa: LAYOUT.data, epa: LAYOUT.data + 0x1000n, permissions: MEM_ATTR.READ | MEM_ATTR.WRITE | MEM_ATTR.EXEC }], 0n),
  );
  t.is(await vtlCall(m, VSM_FUNC.PROTECT_MEMORY, LAYOUT.pageList, 1n), -VSM_ERRNO.EINVAL);
  t.is(await vtlCall(m, VSM_FUNC.PROTECT_MEMORY, LAYOUT.pageList + 8n, 1n), -VSM_ERRNO.EINVAL, 'an unaligned list');
  t.is(await vtlCall(m, VSM_FUNC.PROTECT_MEMORY, LAYOUT.pageList, 0n), -VSM_ERRNO.EINVAL, 'no ranges');
  m.vmm.core.memory.write(gpa(LAYOUT.pageList), encodePageList([{ pa: LAYOUT.data, epa: LAYOUT.data + 0x1000n, permissions: MEM_ATTR.READ }], 0n));
  t.is(await vtlCall(m, VSM_FUNC.PROTECT_MEMORY, LAYOUT.pageList, 1n), 0);
  t.is(m.vmm.core.ept.get(data) & (EPT_R | EPT_W | EPT_XS), EPT_R);
});

test('VALIDATE_MODULE goes through the authenticated change (one audit record) and answers a token UNLOAD_MODULE takes', async (t) => {
  const { m, audit } = withVerifier(
    (r) => (r.kind === 'module-load' ? { ok: true, reason: 'ok', grants } : { ok: r.kind === 'module-unload', reason: 'ok' }),
    hyperv,
  );
  const token = await vtlCall(m, VSM_FUNC.VALIDATE_MODULE, DESC, 2n);
  t.is(token, 0, 'LVBS tokens count from 0');
  t.like(audit.records()[0], { event: 'verdict', kind: 'module-load', subject: 'mod0', ok: true, applied: true });
  t.is(m.vmm.core.ept.get(gfn(Number(MOD_TEXT >> 12n))) & (EPT_R | EPT_W | EPT_XS), EPT_R | EPT_XS);
  t.is(await vtlCall(m, VSM_FUNC.UNLOAD_MODULE, 5n), -VSM_ERRNO.EINVAL, 'a token never issued');
  t.is(await vtlCall(m, VSM_FUNC.UNLOAD_MODULE, BigInt(token)), 0);
  t.is(m.vmm.core.ept.get(gfn(Number(MOD_TEXT >> 12n))) & (EPT_R | EPT_W | EPT_XS), EPT_R | EPT_W);
  t.is(await vtlCall(m, VSM_FUNC.UNLOAD_MODULE, BigInt(token)), -VSM_ERRNO.EINVAL, 'the token is gone');
});
