/**
 * The KVM backend of the guest's Heki layer: each op becomes a `vmcall` with the numbers and
 * layouts of shared/abi.ts, descriptors written into the kernel's scratch buffer.
 */
import { HC, HEKI_LOCK_CR_FLAG_ABI_VERSION, KEXEC_FLAG, statusName } from '../../shared/abi.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import { PAGE_SIZE } from '../../shared/addr.ts';
import type { PageRange } from '../../shared/page-list.ts';
import { encodeCodeDesc, encodePatchBatch, patchStatuses, type PatchRequest } from '../../shared/heki-descriptors.ts';
import type { CodeValidation, HekiHypervisor, HekiStatus, KexecLoad, ModuleValidation } from './hypervisor.ts';
import type { Scratch } from './scratch.ts';
import { NO_SPACE, writeKexecDesc, writeModuleDesc, writeName as writeNameAt, writePageListChain } from './scratch-descriptors.ts';

function status(ret: number): HekiStatus {
  return ret >= 0 ? { ok: true } : { ok: false, status: ret, name: statusName(ret) };
}

/** Builds the KVM backend for one vCPU and the kernel's scratch buffer. */
export function kvmHekiBackend(cpu: GuestCpu, scratch: Scratch): Required<HekiHypervisor> {
  const writeName = (off: number, name: string): { va: bigint; len: number } | undefined => writeNameAt(scratch, off, name);
  return {
    name: 'kvm',
    async detect() {
      const v = await cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, 0n, BigInt(HEKI_LOCK_CR_FLAG_ABI_VERSION));
      return v > 0 ? v : undefined;
    },
    async lockCr(cr, mask) {
      return status(await cpu.vmcall(HC.LOCK_CR_UPDATE, BigInt(cr), mask, 0n));
    },
    protectMemory(ranges: readonly PageRange[]) {
      return scratch.exclusive(async () => {
        if (writePageListChain(scratch, ranges) === undefined) return NO_SPACE;
        return status(await cpu.vmcall(HC.PROTECT_MEMORY, scratch.pa));
      });
    },
    async endBoot() {
      return status(await cpu.vmcall(HC.HEKI_END_BOOT));
    },
    validateModule(m: ModuleValidation) {
      return scratch.exclusive(async () => {
        if (!writeModuleDesc(scratch, m)) return NO_SPACE;
        return status(await cpu.vmcall(HC.HEKI_LOAD_MODULE, scratch.pa));
      });
    },
    unloadModule(nameStr: string) {
      return scratch.exclusive(async () => {
        const name = writeName(0, nameStr);
        if (!name) return NO_SPACE;
        return status(await cpu.vmcall(HC.HEKI_UNLOAD_MODULE, name.va, BigInt(name.len)));
      });
    },
    freeModuleInit(nameStr: string) {
      return scratch.exclusive(async () => {
        const name = writeName(0, nameStr);
        if (!name) return NO_SPACE;
        return status(await cpu.vmcall(HC.HEKI_FREE_MODULE_INIT, name.va, BigInt(name.len)));
      });
    },
    textPoke(patches: readonly PatchRequest[]) {
      return scratch.exclusive(async () => {
        const batch = encodePatchBatch(patches);
        if (!scratch.write(0, batch)) return { ...NO_SPACE, statuses: [] };
        const ret = await cpu.vmcall(HC.HEKI_TEXT_PATCH, scratch.pa);
        const back = scratch.read(0, batch.length);
        return { ...status(ret), statuses: back ? patchStatuses(back) : [] };
      });
    },
    textPokeBatch(batch: Uint8Array) {
      return scratch.exclusive(async () => {
        if (!scratch.write(0, batch)) return { ...NO_SPACE, statuses: () => [] };
        const ret = await cpu.vmcall(HC.HEKI_TEXT_PATCH, scratch.pa);
        // After a success every entry says "applied": read the statuses back only when asked.
        const statuses = (): readonly number[] => {
          const back = scratch.read(0, batch.length);
          return back ? patchStatuses(back) : [];
        };
        return { ...status(ret), statuses };
      });
    },
    async setMemory(va: bigint, pages: number, attributes: number) {
      return status(await cpu.vmcall(HC.HEKI_SET_MEMORY, va, BigInt(pages), BigInt(attributes)));
    },
    loadCode(c: CodeValidation) {
      return scratch.exclusive(async () => {
        const name = writeName(PAGE_SIZE, c.name);
        if (!name) return NO_SPACE;
        const desc = encodeCodeDesc({
          what: c.what,
          imageGva: c.imageVa,
          imageLen: c.imageLen,
          nameGva: name.va,
          nameLen: name.len,
          keyId: c.keyId,
          signature: c.signature,
        });
        if (!scratch.write(0, desc)) return NO_SPACE;
        return status(await cpu.vmcall(HC.HEKI_LOAD_CODE, scratch.pa));
      });
    },
    kexecLoad(k: KexecLoad) {
      return scratch.exclusive(async () => {
        if (!writeKexecDesc(scratch, k)) return NO_SPACE;
        return status(await cpu.vmcall(HC.HEKI_KEXEC_LOAD, scratch.pa, BigInt(k.crash ? KEXEC_FLAG.ON_CRASH : 0)));
      });
    },
    async kexecExec() {
      return status(await cpu.vmcall(HC.HEKI_KEXEC));
    },
  };
}
