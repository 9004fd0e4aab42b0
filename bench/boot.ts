/**
 * Boot and lock of the real kernel image: machine/machine.ts `createMachineDetailed` (load
 * the image, build and sign the manifest, start the verifier and its spare, load the kernel's
 * segments) and `boot()` (the guest boots on its own page tables, pins CR0/CR4 bits, locks
 * its text and rodata in the EPT and ends boot, when the verifier checks the text against the
 * manifest). The image is loaded from its file each time (the decompressed vmlinux is cached
 * on disk after the first run, shared/kernel-image/vmlinux-cache.ts).
 */
import type { BenchContext } from './context.ts';
import { bootReal } from './real-machine.ts';
import { median } from './stats.ts';

/** Boot-and-lock figures. */
export interface BootLock {
  readonly totalMs: number;
  readonly createMs: number;
  readonly bootMs: number;
  readonly runs: number;
}

/** Builds and boots the machine `runs` times; medians. */
export async function measureBootLock(ctx: BenchContext, runs: number, memoryBytes?: bigint): Promise<BootLock> {
  if (!ctx.haveFixtures) throw new Error('needs the real kernel (fixtures)');
  const totals: number[] = [];
  const creates: number[] = [];
  const boots: number[] = [];
  for (let i = 0; i < runs; i++) {
    const b = await bootReal(ctx, memoryBytes === undefined ? {} : { memoryBytes });
    await b.machine.dispose();
    creates.push(b.createMs);
    boots.push(b.bootMs);
    totals.push(b.createMs + b.bootMs);
  }
  return { totalMs: median(totals), createMs: median(creates), bootMs: median(boots), runs };
}
