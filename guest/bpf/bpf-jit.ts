/**
 * eBPF JIT output into a bpf_prog_pack-like area (module memory, as bpf_jit_alloc_exec does):
 * the image is written into data pages, then the hypervisor must authenticate it (a signed
 * code image, bound to its load address) before the pages become executable.
 */
import { gva } from '../../shared/addr.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';
import type { CodePlacementSigner } from './code-signer.ts';
import type { Heki } from '../heki/heki.ts';
import { PROT, type KernelMm } from '../mm/kernel-mm.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import { failed, fromMm, refusalOf, refused, type GuestOpError } from '../heki/refusal.ts';

/** A JITed program. */
export interface BpfProgram {
  readonly name: string;
  readonly va: bigint;
  readonly pages: number;
  readonly length: number;
}

/** The JIT's loader side. */
export class BpfJit {
  readonly programs = new Map<string, BpfProgram>();

  constructor(
    private readonly cpu: GuestCpu,
    private readonly mm: KernelMm,
    private readonly heki: Heki,
  ) {}

  /**
   * Places `image` and asks the hypervisor to make it executable. `sign` stands in for the
   * program's signer (the image is signed for its load address); without it the image goes
   * unsigned and must be refused.
   */
  async load(name: string, image: Uint8Array, sign: CodePlacementSigner | undefined): Promise<Result<BpfProgram, GuestOpError>> {
    if (this.programs.has(name)) return err(failed(`a BPF program named ${name} is already loaded`));
    if (image.length === 0) return err(failed('empty BPF image'));
    const pages = Math.ceil(image.length / 4096);
    const mem = await this.mm.vmalloc(pages, PROT.RW, 'modules');
    if (!mem.ok) return err(fromMm(mem));
    const va = mem.value.va;
    if (!this.cpu.write(gva(va), image).ok) {
      await this.mm.vfree(va, pages, 'modules');
      return err(failed('cannot write the JIT image'));
    }
    const sig = sign ? sign(image, { what: 'bpf-jit', addr: va }) : { keyId: new Uint8Array(8), signature: new Uint8Array(64) };
    const s = await this.heki.hv.loadCode!({ what: 'bpf-jit', name, imageVa: va, imageLen: image.length, keyId: sig.keyId, signature: sig.signature });
    if (!s.ok) {
      await this.mm.vfree(va, pages, 'modules');
      return err(refused(refusalOf(s), `the hypervisor refused BPF program ${name}: ${s.name}`));
    }
    const adopted = await this.mm.adopt(va, pages, PROT.RX);
    if (!adopted.ok) return err(fromMm(adopted));
    const prog = { name, va, pages, length: image.length };
    this.programs.set(name, prog);
    return ok(prog);
  }
}
