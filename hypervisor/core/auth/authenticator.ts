/**
 * The core's side of authenticated changes: the state the core keeps so that it applies a
 * verdict to the right frames, and the steps every authenticated hypercall shares. The steps
 * are run in their order by one function, authenticated-change.ts; handlers do not call them.
 *
 * The order is fixed (ARCHITECTURE.md): **freeze, snapshot, verify, apply, audit.** The
 * target frames become non-writable for the guest (EPT_FROZEN) before their bytes are copied
 * for the verifier, and stay so until the verdict is applied, so the guest cannot change what
 * was verified. Frames are counted, so overlapping requests thaw only when the last is done.
 *
 * Trusted code map: the core patches text only where it knows, from its own records, which
 * frame a kernel virtual address is: the kernel's text from the manifest's physical layout,
 * and module and code-image text from the frames it snapshotted when it verified them. It
 * never follows the guest's page tables to decide where to write.
 */
import { failClosedVerdict, type Verdict } from '../../../shared/protocol.ts';
import type { OutgoingRequest } from '../../verifier-link/verifier-link.ts';
import type { AuditLog } from '../../audit/audit-log.ts';
import type { Ept } from '../../ept/ept.ts';
import type { PatchRecords } from '../../../shared/ring/patch-records.ts';
import { gfn, gpa, gpaToGfn, type Gfn } from '../../../shared/addr.ts';

/**
 * What the core and the VMM need of the verifier: one call that never rejects, and two
 * optional control calls the VMM's lifecycle uses (hypervisor/vmm/lifecycle/): a VM without
 * them cannot be reset with its verifier state, nor hibernated or migrated.
 */
export interface VerifierPort {
  verify(request: OutgoingRequest): Promise<Verdict>;
  /**
   * Optional: a text-patch batch in record form (shared/ring/patch-records.ts), the same
   * request as `verify` with the records' items and the same verdict; the verifier link sends
   * it over the verification ring without an object per item. Without it the core sends items.
   */
  verifyPatches?(request: { readonly vm: string; readonly records: PatchRecords }): Promise<Verdict>;
  /** Optional: forgets everything the verifier keeps for `vm` (the VMM reset the VM). */
  resetVm?(vm: string): Promise<void>;
  /** Optional: the verifier's per-VM state of `vm`, as plain data, or undefined when it has none. */
  exportVm?(vm: string): Promise<unknown>;
  /**
   * Optional: the same state as the `verifier` section of a state image, which the verifier
   * writes and alone reads back (the VMM carries the bytes); undefined when no verifier answers.
   */
  exportVmSection?(vm: string): Promise<Uint8Array | undefined>;
  /**
   * Optional: the VMM tells the verifier how many CPUs of `vm` are online now (a CPU
   * hotplug). Resolves undefined once the verifier took it, else why not.
   */
  setOnlineCpus?(vm: string, online: number): Promise<string | undefined>;
}

/** The denial the core takes when its port throws (the verifier is unavailable): fail closed. */
export function unavailableVerdict(e: unknown): Verdict {
  return failClosedVerdict(-1, e instanceof Error ? e.message : String(e));
}

/** A section of the kernel image the VMM knows from the manifest. */
export interface KernelRegion {
  readonly name: string;
  readonly vaddr: bigint;
  readonly paddr: bigint;
  readonly size: number;
}

/** A module the core granted permissions to. */
export interface ModuleRecord {
  readonly name: string;
  /** Every frame of every section, with the EPT bits it had before the load. */
  readonly frames: ReadonlyMap<Gfn, number>;
  /** Text pages: virtual page -> frame. */
  readonly textPages: ReadonlyMap<bigint, Gfn>;
  /**
   * The frames of each section (by section index) as the core resolved them at the load, so a
   * later change to some sections (KVM_HC_HEKI_FREE_MODULE_INIT) never goes through the
   * guest's page tables again. Absent in records restored from images made before it.
   */
  readonly sections?: ReadonlyMap<number, readonly Gfn[]>;
}

/** A verified code image (eBPF JIT, trampoline). */
export interface CodeRecord {
  readonly name: string;
  readonly frames: ReadonlyMap<Gfn, number>;
  readonly textPages: ReadonlyMap<bigint, Gfn>;
}

const PAGE = 4096n;

/**
 * The authenticated-change state as plain data, for hibernation images and migration
 * snapshots (hypervisor/core/core-state.ts). Frames are numbers, pages bigints.
 */
export interface AuthenticatorState {
  readonly bootEnded: boolean;
  readonly modules: ReadonlyArray<{
    readonly name: string;
    readonly frames: ReadonlyArray<[number, number]>;
    readonly textPages: ReadonlyArray<[bigint, number]>;
    readonly sections?: ReadonlyArray<[number, readonly number[]]>;
  }>;
  readonly codeImages: ReadonlyArray<{
    readonly name: string;
    readonly frames: ReadonlyArray<[number, number]>;
    readonly textPages: ReadonlyArray<[bigint, number]>;
  }>;
  /** The trusted code map: virtual page -> frame. */
  readonly codePages: ReadonlyArray<[bigint, number]>;
}

/** The authenticated-change state of one VM. */
export class Authenticator {
  readonly port: VerifierPort;
  readonly vm: string;
  readonly audit: AuditLog;
  readonly kernelRegions: readonly KernelRegion[];
  /** Whether the guest ended boot (heki-sim END_BOOT) and the verifier accepted its text. */
  bootEnded = false;
  readonly modules = new Map<string, ModuleRecord>();
  readonly codeImages = new Map<string, CodeRecord>();
  readonly #ept: Ept;
  readonly #frozen = new Map<Gfn, number>();
  /** Trusted code pages: virtual page -> frame. */
  readonly #codePages = new Map<bigint, Gfn>();
  #retired = false;

  constructor(config: { port: VerifierPort; vm: string; audit: AuditLog; kernelRegions: readonly KernelRegion[] }, ept: Ept) {
    this.port = config.port;
    this.vm = config.vm;
    this.audit = config.audit;
    this.kernelRegions = config.kernelRegions;
    this.#ept = ept;
    for (const r of config.kernelRegions) {
      if (!r.name.startsWith('.text') && r.name !== '.init.text') continue;
      for (let off = 0n; off < BigInt(r.size); off += PAGE) {
        this.#codePages.set((r.vaddr + off) & ~(PAGE - 1n), gpaToGfn(gpa(r.paddr + off)));
      }
    }
  }

  /**
   * Called by the core when the VMM resets the VM: this state belongs to the old boot.
   * INVARIANT: a retired authenticator changes nothing any more (no freeze, thaw or grant
   * reaches the EPT, no code page is added), and a verdict that arrives after the reset is
   * turned into a denial, so a verification in flight across a reset cannot apply the old
   * boot's grants to the new one.
   */
  retire(): void {
    this.#retired = true;
  }

  /** True once the VM was reset under this state. */
  get retired(): boolean {
    return this.#retired;
  }

  /** True while a verification holds frames frozen. */
  get busy(): boolean {
    return this.#frozen.size > 0;
  }

  /** The records as plain data (see {@link AuthenticatorState}). */
  exportState(): AuthenticatorState {
    const rec = (r: ModuleRecord | CodeRecord) => ({ name: r.name, frames: [...r.frames], textPages: [...r.textPages] });
    return {
      bootEnded: this.bootEnded,
      modules: [...this.modules.values()].map((m) => ({
        ...rec(m),
        ...(m.sections ? { sections: [...m.sections].map(([i, f]) => [i, [...f]] as [number, number[]]) } : {}),
      })),
      codeImages: [...this.codeImages.values()].map(rec),
      codePages: [...this.#codePages],
    };
  }

  /**
   * Replaces the records with `state` (a restored image). INVARIANT: only the core calls it,
   * on a fresh authenticator of a VM that has not run since its reset.
   */
  importState(state: AuthenticatorState): void {
    this.bootEnded = state.bootEnded;
    this.modules.clear();
    this.codeImages.clear();
    // The saved state is data (a snapshot image): its frame numbers are validated on the way in.
    const rec = (r: AuthenticatorState['codeImages'][number]) => ({
      name: r.name,
      frames: new Map(r.frames.map(([f, p]) => [gfn(f), p] as const)),
      textPages: new Map(r.textPages.map(([va, f]) => [va, gfn(f)] as const)),
    });
    for (const m of state.modules)
      this.modules.set(m.name, { ...rec(m), ...(m.sections ? { sections: new Map(m.sections.map(([i, f]) => [i, f.map((x) => gfn(x))])) } : {}) });
    for (const c of state.codeImages) this.codeImages.set(c.name, rec(c));
    this.#codePages.clear();
    for (const [va, f] of state.codePages) this.#codePages.set(va, gfn(f));
  }

  /** True when `frame` belongs to a verified module or code image. */
  ownsFrame(frame: Gfn): boolean {
    for (const m of this.modules.values()) if (m.frames.has(frame)) return true;
    for (const c of this.codeImages.values()) if (c.frames.has(frame)) return true;
    return false;
  }

  /** The frame of verified code at virtual address `va`, or undefined. */
  codeFrame(va: bigint): Gfn | undefined {
    return this.#codePages.get(va & ~(PAGE - 1n));
  }

  /** Adds verified code pages to the trusted map. */
  addCode(pages: ReadonlyMap<bigint, Gfn>): void {
    if (this.#retired) return;
    for (const [va, f] of pages) this.#codePages.set(va, f);
  }

  /** Removes code pages from the trusted map. */
  removeCode(pages: ReadonlyMap<bigint, Gfn>): void {
    for (const va of pages.keys()) this.#codePages.delete(va);
  }

  /** Freeze: the guest can no longer write these frames until {@link thaw}. */
  freeze(frames: Iterable<Gfn>): Gfn[] {
    const list = [...new Set(frames)];
    if (this.#retired) return [];
    for (const f of list) {
      const n = this.#frozen.get(f) ?? 0;
      this.#frozen.set(f, n + 1);
      if (n === 0) this.#ept.freeze(f);
    }
    return list;
  }

  /** Ends one freeze of these frames; a frame thaws when its last freeze ends. */
  thaw(frames: readonly Gfn[]): void {
    if (this.#retired) return;
    for (const f of frames) {
      const n = this.#frozen.get(f) ?? 0;
      if (n <= 1) {
        this.#frozen.delete(f);
        this.#ept.thaw(f);
      } else {
        this.#frozen.set(f, n - 1);
      }
    }
  }

  /** Sets a frame's permissions while keeping its FROZEN state (the core's apply step). */
  setPermissions(frame: Gfn, perms: number): void {
    if (this.#retired) return;
    this.#ept.setKeepingFrozen(frame, perms);
  }

  /** Asks the verifier; never rejects (a throwing port is a denial). */
  async verify(request: OutgoingRequest): Promise<Verdict> {
    let v: Verdict;
    try {
      v = await this.port.verify(request);
    } catch (e) {
      return unavailableVerdict(e);
    }
    if (this.#retired) return { v: v.v, id: v.id, ok: false, reason: 'the VMM reset the VM while the verifier decided: nothing is applied', plugins: ['core'] };
    return v;
  }

  /**
   * Asks the verifier about a text-patch batch in record form, through the port's
   * `verifyPatches` when it has one (else as items, through {@link verify}); never rejects.
   * The records must not change until it settles.
   */
  async verifyPatches(records: PatchRecords): Promise<Verdict> {
    const port = this.port;
    if (!port.verifyPatches) return this.verify({ kind: 'text-patch', vm: this.vm, items: records.toItems() });
    let v: Verdict;
    try {
      v = await port.verifyPatches({ vm: this.vm, records });
    } catch (e) {
      return unavailableVerdict(e);
    }
    if (this.#retired) return { v: v.v, id: v.id, ok: false, reason: 'the VMM reset the VM while the verifier decided: nothing is applied', plugins: ['core'] };
    return v;
  }

  /**
   * The audit step: one record per verdict, with what the core applied. A retryable refusal
   * (verifier busy) is recorded too, marked `retryable: true`: the guest got -KVM_EAGAIN; a
   * fail-closed denial (verifier unavailable) is marked `failClosed: true`.
   */
  record(kind: string, subject: string, verdict: Verdict, applied: Record<string, string | number | boolean | null>): void {
    this.audit.append({
      event: 'verdict',
      vm: this.vm,
      kind,
      subject,
      request: verdict.id,
      ok: verdict.ok,
      reason: verdict.reason,
      plugins: [...verdict.plugins],
      ...(verdict.retryable === true && !verdict.ok ? { retryable: true } : {}),
      ...(verdict.failClosed === true && !verdict.ok ? { failClosed: true } : {}),
      ...applied,
    });
  }
}
