/**
 * Writing Heki descriptors into the kernel's scratch buffer, shared by the hypervisor
 * backends (kvm-backend.ts, vsm-backend.ts): both hand the hypervisor a guest-physical
 * address of the same `struct heki_page` list and of the simulator's module and kexec
 * descriptors (shared/heki-descriptors.ts). Each returns false when the buffer is too small
 * or not writable. Callers hold scratch.exclusive().
 */
import { PAGE_SIZE } from '../../shared/addr.ts';
import { KVM_STATUS } from '../../shared/abi.ts';
import { chunkPageRanges, encodePageList, type PageRange } from '../../shared/page-list.ts';
import { encodeKexecDesc, encodeModuleDesc } from '../../shared/heki-descriptors.ts';
import type { HekiStatus, KexecLoad, ModuleValidation } from './hypervisor.ts';
import type { Scratch } from './scratch.ts';

/** The status a backend answers when a descriptor does not fit (E2BIG: the same number in KVM's statuses and LVBS's errnos). */
export const NO_SPACE: HekiStatus = { ok: false, status: -KVM_STATUS.KVM_E2BIG, name: 'scratch buffer too small or not writable' };

/** Writes `ranges` as a chain of heki_page lists from scratch offset 0; the chain's length, or undefined. */
export function writePageListChain(scratch: Scratch, ranges: readonly PageRange[]): number | undefined {
  const chunks = chunkPageRanges(ranges);
  if (chunks.length * PAGE_SIZE > scratch.size) return undefined;
  for (let i = 0; i < chunks.length; i++) {
    const next = i + 1 < chunks.length ? scratch.pa + BigInt((i + 1) * PAGE_SIZE) : 0n;
    if (!scratch.write(i * PAGE_SIZE, encodePageList(chunks[i]!, next))) return undefined;
  }
  return chunks.length;
}

/** Writes `name` at scratch offset `off`; its guest-virtual address and length. */
export function writeName(scratch: Scratch, off: number, name: string): { va: bigint; len: number } | undefined {
  const bytes = new TextEncoder().encode(name);
  return scratch.write(off, bytes) ? { va: scratch.va(off), len: bytes.length } : undefined;
}

/** Writes a module descriptor at offset 0 (its name on the second page). */
export function writeModuleDesc(scratch: Scratch, m: ModuleValidation): boolean {
  const name = writeName(scratch, PAGE_SIZE, m.name);
  if (!name) return false;
  const desc = encodeModuleDesc({
    imageGva: m.imageVa,
    imageLen: m.imageLen,
    nameGva: name.va,
    nameLen: name.len,
    sections: m.sections,
    ...(m.percpu !== undefined ? { percpu: m.percpu } : {}),
  });
  return scratch.write(0, desc);
}

/** Writes a kexec descriptor at offset 0. */
export function writeKexecDesc(scratch: Scratch, k: KexecLoad): boolean {
  return scratch.write(0, encodeKexecDesc({ imageGva: k.imageVa, imageLen: k.imageLen, manifestGva: k.manifestVa, manifestLen: k.manifestLen }));
}
