/**
 * The VSM function table of the Hyper-V personality: what VTL1 does for each
 * `VSM_VTL_CALL_FUNC_ID_*` a VTL0 kernel sends in a0 of HvCallVtlCall, like LVBS's
 * `vsm_dispatch()` ([vsm.rs], microsoft/litebox litebox_platform_lvbs/src/mshv/vsm.rs).
 *
 * TRUST: VTL1 here is the core plus the verifier VM, as on KVM. Every authenticated function
 * is the KVM personality's handler (hypervisor/hypercalls/), so it goes through the one
 * authenticatedChange() (freeze, snapshot, verify, apply, audit); this file only translates
 * arguments, LVBS's end-of-boot rules and statuses. Nothing here writes the EPT itself.
 *
 * Contract of each handler: it returns what VTL1 leaves in a3: 0 or a token on success, a
 * negated Linux errno on failure (LVBS's convention); a failing call changes nothing.
 *
 * Where the layouts differ from LVBS (docs/hypervisors.md): PROTECT_MEMORY's a1 is the same
 * `struct heki_page` list as Heki's (LVBS shares it); VALIDATE_MODULE's and KEXEC_VALIDATE's
 * a1 point at the simulator's descriptors (shared/heki-descriptors.ts), not at LVBS's lists
 * of typed ranges, because the verifier checks the simulator's descriptors.
 */
import { KEXEC_FLAG, KVM_STATUS } from '../../shared/abi.ts';
import { CR0_PIN_MASK, CR4_PIN_MASK, VSM_ERRNO, VSM_FUNC, type HvVtlCallParam, type VsmFunctionId } from '../../shared/hv-vsm-abi.ts';
import { HEKI_CONFIGURE } from '../../shared/exit-reasons.ts';
import type { HypercallContext } from '../hypercalls/context.ts';
import { protectMemory } from '../hypercalls/protect-memory.ts';
import { endBoot } from '../hypercalls/end-boot.ts';
import { loadModule } from '../hypercalls/load-module.ts';
import { unloadModuleNamed } from '../hypercalls/unload-module.ts';
import { freeModuleInitNamed } from '../hypercalls/free-module-init.ts';
import { kexecLoad } from '../hypercalls/kexec-load.ts';
import { decodeName, readModuleDesc } from '../hypercalls/descriptors.ts';
import { dropModuleToken, issueModuleToken, moduleOfToken } from './module-tokens.ts';

/** One VSM function: the VTL call's parameters in, VTL1's a3 out. */
export type VsmHandler = (ctx: HypercallContext, p: HvVtlCallParam) => number | Promise<number>;

const PAGE_MASK = 0xfffn;

/**
 * A core handler's KVM status as LVBS's errno: the KVM statuses are errno values already
 * (shared/abi.ts), except KVM_ENOSYS (1000), which is ENOSYS (38) here.
 */
export function kvmToErrno(ret: number): number {
  return ret === -KVM_STATUS.KVM_ENOSYS ? -VSM_ERRNO.ENOSYS : ret;
}

async function viaCore(ret: number | Promise<number>): Promise<number> {
  return kvmToErrno(await ret);
}

/** LVBS refuses these after SIGNAL_END_OF_BOOT with -EINVAL ([vsm.rs] `check_end_of_boot()`). */
function afterBoot(ctx: HypercallContext): boolean {
  return ctx.core.auth?.bootEnded === true;
}

/** The guest-physical page `pfn` names lies in guest RAM. */
function pfnInRam(ctx: HypercallContext, pfn: bigint): boolean {
  return pfn >= 0n && pfn < BigInt(ctx.core.memory.frames);
}

/**
 * LOCK_REGS: pin CR0 and CR4 with LVBS's masks and lock the MSRs and descriptor tables
 * ([vsm.rs] `mshv_vsm_lock_regs()`: the CR intercept masks, and write intercepts on LSTAR,
 * STAR, CSTAR, APIC_BASE, EFER, SYSENTER_*, SFMASK, GDTR, IDTR, LDTR, TR).
 *
 * The core's pins keep bits set (Heki's model); LVBS locks the masked bits' values both
 * ways. The bits of each mask that are set now are pinned; a masked bit that is clear now
 * (LVBS would keep it clear) is not held clear here: docs/hypervisors.md names it.
 * The MSRs and tables are locked by the VMM's register intercepts, which the same
 * `lock-cr` configure exit the KVM path raises asks for (hypervisor/vmm/vmm.ts
 * pinPlatformState).
 */
const lockRegs: VsmHandler = ({ core, vcpu }) => {
  if (afterBoot({ core, vcpu })) return -VSM_ERRNO.EINVAL;
  const masks: Array<[0 | 4, bigint]> = [
    [0, CR0_PIN_MASK & vcpu.readCr(0)],
    [4, CR4_PIN_MASK & vcpu.readCr(4)],
  ];
  for (const [cr, mask] of masks) {
    if (core.configureExits(HEKI_CONFIGURE.LOCK_CR)) {
      const r = core.exit({ reason: 'heki-configure', vcpu: vcpu.id, request: { kind: 'lock-cr', cr, mask } });
      if (r.action !== 'resume') return -VSM_ERRNO.EPERM;
    }
  }
  // INVARIANT: both exits resumed before any pin changes, so a refused call pins nothing; the
  // masks are inside this core's pinnable bits (VmCore builds its CrPins with LVBS's masks).
  for (const [cr, mask] of masks) {
    if (core.pins.unpinnable(cr, mask) !== 0n) throw new Error(`CR${cr} mask 0x${mask.toString(16)} is outside the Hyper-V pinnable bits`);
  }
  for (const [cr, mask] of masks) core.pins.pin(cr, mask);
  return 0;
};

/** PROTECT_MEMORY (a1 = heki_page list, a2 = nranges): the core's PROTECT_MEMORY, before end of boot only. */
const protect: VsmHandler = (ctx, p) => {
  // [vsm.rs] mshv_vsm_protect_memory(): a page-aligned list and a non-zero count, else -EINVAL.
  if ((p.a1 & PAGE_MASK) !== 0n || p.a2 === 0n) return -VSM_ERRNO.EINVAL;
  if (afterBoot(ctx)) return -VSM_ERRNO.EINVAL;
  return viaCore(protectMemory(ctx, [p.a1, 0n, 0n, 0n]));
};

/** VALIDATE_MODULE (a1 = module descriptor, a2 = nranges, a3 = flags): the core's module load; answers a token. */
const validateModule: VsmHandler = async (ctx, p) => {
  if ((p.a1 & PAGE_MASK) !== 0n || p.a2 === 0n) return -VSM_ERRNO.EINVAL;
  const desc = readModuleDesc(ctx.core.memory, p.a1);
  if (!desc.ok) return -VSM_ERRNO.EINVAL;
  const name = decodeName(ctx.vcpu.readForCore(desc.value.nameGva, desc.value.nameLen));
  if (name === undefined) return -VSM_ERRNO.EINVAL;
  const ret = kvmToErrno(await loadModule(ctx, [p.a1, 0n, 0n, 0n]));
  if (ret < 0) return ret;
  return issueModuleToken(ctx.core, name);
};

/** FREE_MODULE_INIT (a1 = token): the core's end of init (KVM_HC_HEKI_FREE_MODULE_INIT's path). */
const freeModuleInit: VsmHandler = async (ctx, p) => {
  const name = moduleOfToken(ctx.core, p.a1);
  if (name === undefined || !ctx.core.auth?.modules.has(name)) return -VSM_ERRNO.EINVAL;
  return kvmToErrno(await freeModuleInitNamed(ctx, name));
};

/** UNLOAD_MODULE (a1 = token): the core's module unload. */
const unloadModule: VsmHandler = async (ctx, p) => {
  const name = moduleOfToken(ctx.core, p.a1);
  if (name === undefined || !ctx.core.auth?.modules.has(name)) return -VSM_ERRNO.EINVAL;
  const ret = kvmToErrno(await unloadModuleNamed(ctx, name));
  if (ret === 0) dropModuleToken(ctx.core, p.a1);
  return ret;
};

/**
 * KEXEC_VALIDATE (a1 = kexec descriptor or 0, a2 = nranges, a3 = crash): the core's kexec
 * load. a1 = 0 only invalidates the slot ([vsm.rs] "invalidation only"), the core's UNLOAD.
 */
const kexecValidate: VsmHandler = (ctx, p) => {
  const crash = p.a3 !== 0n ? KEXEC_FLAG.ON_CRASH : 0;
  if (p.a1 === 0n) return viaCore(kexecLoad(ctx, [0n, BigInt(crash | KEXEC_FLAG.UNLOAD), 0n, 0n]));
  if ((p.a1 & PAGE_MASK) !== 0n || p.a2 === 0n) return -VSM_ERRNO.EINVAL;
  return viaCore(kexecLoad(ctx, [p.a1, BigInt(crash), 0n, 0n]));
};

/**
 * Every VSM function of 0x1FFE0..0x1FFEA. The ones without a core counterpart answer what
 * LVBS answers or -EOPNOTSUPP with the reason in docs/hypervisors.md:
 * - ENABLE_APS_VTL: LVBS answers 0 ("not supported in this implementation").
 * - BOOT_APS (a1 = online-mask pfn, a2 = boot-signal pfn): both pages must be guest RAM
 *   (-EINVAL otherwise); the simulated vCPUs need no per-VTL start, so nothing else happens.
 * - LOAD_KDATA: the verifier's certificates and symbols come from the VMM and the signed
 *   manifest, never from VTL0 (-EOPNOTSUPP).
 * - COPY_SECONDARY_KEY: keys come from the VMM's keyring (-EOPNOTSUPP); LVBS answers 0 (TODO there).
 */
export const VSM_HANDLERS = {
  [VSM_FUNC.ENABLE_APS_VTL]: () => 0,
  [VSM_FUNC.BOOT_APS]: (ctx, p) => (pfnInRam(ctx, p.a1) && pfnInRam(ctx, p.a2) ? 0 : -VSM_ERRNO.EINVAL),
  [VSM_FUNC.LOCK_REGS]: lockRegs,
  [VSM_FUNC.SIGNAL_END_OF_BOOT]: (ctx) => viaCore(endBoot(ctx, [0n, 0n, 0n, 0n])),
  [VSM_FUNC.PROTECT_MEMORY]: protect,
  [VSM_FUNC.LOAD_KDATA]: () => -VSM_ERRNO.EOPNOTSUPP,
  [VSM_FUNC.VALIDATE_MODULE]: validateModule,
  [VSM_FUNC.FREE_MODULE_INIT]: freeModuleInit,
  [VSM_FUNC.UNLOAD_MODULE]: unloadModule,
  [VSM_FUNC.COPY_SECONDARY_KEY]: () => -VSM_ERRNO.EOPNOTSUPP,
  [VSM_FUNC.KEXEC_VALIDATE]: kexecValidate,
} satisfies Record<VsmFunctionId, VsmHandler>;
