/**
 * The KVM backend of the guest's Heki layer: each op becomes a `vmcall` with the numbers and
 * layouts of shared/abi.ts, descriptors written into the kernel's scratch buffer.
 */
import { HC, HEKI_LOCK_CR_FLAG_ABI_VERSION, KEXEC_FLAG, KVM_STATUS, statusName } from '../../shared/abi.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import { PAGE_SIZE } from '../../shared/addr.ts';
import { chunkPageRanges, encodePageList, type PageRange } from '../../shared/page-list.ts';
import { encodeCodeDesc, encodeKexecDesc, encodeModuleDesc, encodePatchBatch, patchStatuses, type PatchRequest } from '../../shared/heki-descriptors.ts';
import type { CodeValidation, HekiHypervisor, HekiStatus, KexecLoad, ModuleValidation } from './hypervisor.ts';
import type { Scratch } from './scratch.ts';

function status(ret: number): HekiStatus {
  return ret >= 0 ? { ok: true } : { ok: false, status: ret, name: statusName(ret) };
}

const NO_SPACE: HekiStatus = { ok: false, status: -KVM_STATUS.KVM_E2BIG, name: 'scratch buffer too small or not writable' };

/** Builds the KVM backend for one vCPU and the kernel's scratch buffer. */
export function kvmHekiBackend(cpu: GuestCpu, scratch: Scratch): Required<HekiHypervisor> {
  const writeName = (off: number, name: string): { va: bigint; len: number } | undefined => {
    const bytes = new TextEncoder().encode(name);
    return scratch.write(off, bytes) ? { va: scratch.va(off), len: bytes.length } : undefined;
  };
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
        const chunks = chunkPageRanges(ranges);
        if (chunks.length * PAGE_SIZE > scratch.size) return NO_SPACE;
        for (let i = 0; i < chunks.length; i++) {
          const next = i + 1 < chunks.length ? scratch.pa + BigInt((i + 1) * PAGE_SIZE) : 0n;
          if (!scratch.write(i * PAGE_SIZE, encodePageList(chunks[i]!, next))) return NO_SPACE;
        }
        return status(await cpu.vmcall(HC.PROTECT_MEMORY, scratch.pa));
      });
    },
    async endBoot() {
      return status(await cpu.vmcall(HC.HEKI_END_BOOT));
    },
    validateModule(m: ModuleValidation) {
      return scratch.exclusive(async () => {
        const name = writeName(PAGE_SIZE, m.name);
        if (!name) return NO_SPACE;
        const desc = encodeModuleDesc({ imageGva: m.imageVa, imageLen: m.imageLen, nameGva: name.va, nameLen: name.len, sections: m.sections, ...(m.percpu !== undefined ? { percpu: m.percpu } : {}) });
        if (!scratch.write(0, desc)) return NO_SPACE;
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
        const desc = encodeCodeDesc({ what: c.what, imageGva: c.imageVa, imageLen: c.imageLen, nameGva: name.va, nameLen: name.len, keyId: c.keyId, signature: c.signature });
        if (!scratch.write(0, desc)) return NO_SPACE;
        return status(await cpu.vmcall(HC.HEKI_LOAD_CODE, scratch.pa));
      });
    },
    kexecLoad(k: KexecLoad) {
      return scratch.exclusive(async () => {
        const desc = encodeKexecDesc({ imageGva: k.imageVa, imageLen: k.imageLen, manifestGva: k.manifestVa, manifestLen: k.manifestLen });
        if (!scratch.write(0, desc)) return NO_SPACE;
        return status(await cpu.vmcall(HC.HEKI_KEXEC_LOAD, scratch.pa, BigInt(k.crash ? KEXEC_FLAG.ON_CRASH : 0)));
      });
    },
    async kexecExec() {
      return status(await cpu.vmcall(HC.HEKI_KEXEC));
    },
  };
}
