/**
 * The Hyper-V VSM backend of the guest's Heki layer, speaking the LVBS VTL-call ABI
 * (shared/hv-vsm-abi.ts): each op is an HvCallVtlCall (`vmcall` with code 0x11) whose a0 is a
 * `VSM_VTL_CALL_FUNC_ID_*`, like lvbs-linux drivers/hv/hv_vsm.c's `hyperv_heki_hypervisor`
 * (`lock_crs`, `finish_boot`, `protect_memory`) and the module and kexec calls after it.
 *
 * What this ABI cannot express is left out of the ops (the optional members of
 * HekiHypervisor), so the guest falls back exactly as it does on a hypervisor without them;
 * {@link VSM_CAPABILITIES} states each gap and why.
 */
import { HVCALL, VSM_ERRNO, VSM_FUNC, vsmResultName } from '../../shared/hv-vsm-abi.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { PageRange } from '../../shared/page-list.ts';
import type { HekiHypervisor, HekiStatus, KexecLoad, ModuleValidation } from './hypervisor.ts';
import type { Scratch } from './scratch.ts';
import { NO_SPACE, writeKexecDesc, writeModuleDesc, writePageListChain } from './scratch-descriptors.ts';
import type { HekiCapabilities } from './capabilities.ts';
import { cpuidHypervisor } from './cpuid-hypervisor.ts';

function status(ret: number): HekiStatus {
  return ret >= 0 ? { ok: true } : { ok: false, status: ret, name: vsmResultName(ret) };
}

/** What the VSM backend can and cannot authenticate (docs/hypervisors.md). */
export const VSM_CAPABILITIES: HekiCapabilities = {
  backend: 'hyperv-vsm',
  crPinning: 'fixed',
  missing: {
    textPatch:
      'LVBS has no VTL call that authenticates ftrace, static-call, kprobe or alternative patches; its later PATCH_TEXT (0x1FFEB, outside 0x1FFE0..0x1FFEA) takes only jump-label patches precomputed at LOAD_KDATA',
    setMemory: 'LVBS refuses PROTECT_MEMORY after SIGNAL_END_OF_BOOT and has no authenticated permission change (set_memory_*) after boot',
    loadCode: 'LVBS has no call that authenticates a signed code image (eBPF JIT, BPF trampoline)',
    kexecExec: 'LVBS only validates a kexec image (KEXEC_VALIDATE); running it is left to a VTL1 reset intercept, which the ABI does not name',
    crMask: 'LOCK_REGS takes no mask: VTL1 pins CR0 PE|WP|PG and CR4 but MCE|PGE|PCE|VMXE, and locks the syscall MSRs and descriptor tables, all at once',
  },
  extra: {
    loadKdata:
      'LOAD_KDATA hands VTL1 certificates, symbols and precomputed patches from VTL0 before end of boot; Heki has no such call, and here the verifier takes them from the VMM and the signed manifest only',
  },
};

/** Builds the VSM backend for one vCPU and the kernel's scratch buffer. */
export function vsmHekiBackend(cpu: GuestCpu, scratch: Scratch): HekiHypervisor {
  const vtlCall = (fn: number, a1 = 0n, a2 = 0n, a3 = 0n): Promise<number> => cpu.vmcall(HVCALL.VTL_CALL, BigInt(fn), a1, a2, a3);
  // VALIDATE_MODULE answers a token; UNLOAD_MODULE names the module by it.
  const tokens = new Map<string, number>();
  return {
    name: 'hyperv-vsm',
    async detect() {
      // LVBS has no version call: VSM is there when the hypervisor is Hyper-V (hv_vsm_boot_success).
      return cpuidHypervisor(cpu) === 'hyperv' ? 1 : undefined;
    },
    async lockCr() {
      // LOCK_REGS has no arguments: each call locks both CRs (and the MSRs) with VTL1's
      // masks, so Heki's per-CR request is the same call twice (harmless before end of boot,
      // refused by VTL1 after it). The mask the Heki layer asks for is not sent.
      return status(await vtlCall(VSM_FUNC.LOCK_REGS));
    },
    protectMemory(ranges: readonly PageRange[]) {
      return scratch.exclusive(async () => {
        if (writePageListChain(scratch, ranges) === undefined) return NO_SPACE;
        return status(await vtlCall(VSM_FUNC.PROTECT_MEMORY, scratch.pa, BigInt(ranges.length)));
      });
    },
    async endBoot() {
      return status(await vtlCall(VSM_FUNC.SIGNAL_END_OF_BOOT));
    },
    validateModule(m: ModuleValidation) {
      return scratch.exclusive(async () => {
        if (!writeModuleDesc(scratch, m)) return NO_SPACE;
        const ret = await vtlCall(VSM_FUNC.VALIDATE_MODULE, scratch.pa, BigInt(m.sections.length || 1), 0n);
        if (ret >= 0) tokens.set(m.name, ret);
        return status(ret);
      });
    },
    async unloadModule(name: string) {
      const token = tokens.get(name);
      if (token === undefined) return { ok: false, status: -VSM_ERRNO.EINVAL, name: `no VSM token for module ${name}` };
      const s = status(await vtlCall(VSM_FUNC.UNLOAD_MODULE, BigInt(token)));
      if (s.ok) tokens.delete(name);
      return s;
    },
    async freeModuleInit(name: string) {
      const token = tokens.get(name);
      if (token === undefined) return { ok: false, status: -VSM_ERRNO.EINVAL, name: `no VSM token for module ${name}` };
      return status(await vtlCall(VSM_FUNC.FREE_MODULE_INIT, BigInt(token)));
    },
    kexecLoad(k: KexecLoad) {
      return scratch.exclusive(async () => {
        if (!writeKexecDesc(scratch, k)) return NO_SPACE;
        return status(await vtlCall(VSM_FUNC.KEXEC_VALIDATE, scratch.pa, 1n, k.crash ? 1n : 0n));
      });
    },
  };
}
