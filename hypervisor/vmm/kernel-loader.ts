/**
 * The VMM's kernel loader: puts each PT_LOAD segment of a vmlinux at its physical address in
 * guest memory, as Firecracker's (linux-loader's) ELF loader does before the first vCPU runs.
 * The zero-filled tail of a segment (memsz beyond filesz, .bss) is not written: unwritten
 * guest memory reads as zero and costs nothing.
 */
import { PT_LOAD } from '../../shared/elf/types.ts';
import type { Elf64 } from '../../shared/elf/elf64.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import { isAddrError, tryGpa } from '../../shared/addr.ts';

/** Loads the segments; says which one does not fit in guest memory. */
export function loadKernelSegments(memory: GuestMemory, elf: Elf64): Result<{ segments: number; bytes: number }, string> {
  let segments = 0;
  let bytes = 0;
  for (const ph of elf.programHeaders) {
    if (ph.type !== PT_LOAD) continue;
    const at = tryGpa(ph.paddr);
    if (isAddrError(at) || !memory.contains(at, Number(ph.memsz))) {
      return err(`segment ${ph.index} [0x${ph.paddr.toString(16)}, +0x${ph.memsz.toString(16)}) does not fit in ${memory.size} bytes of guest memory`);
    }
    const off = Number(ph.offset);
    memory.write(at, elf.bytes.subarray(off, off + Number(ph.filesz)));
    segments++;
    bytes += Number(ph.filesz);
  }
  return segments > 0 ? ok({ segments, bytes }) : err('the kernel image has no PT_LOAD segment');
}
