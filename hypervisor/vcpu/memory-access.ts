/**
 * A vCPU's memory accesses, checked in the order a CPU checks them: canonical address (#GP)
 * -> page walk through the guest's tables, with EPT checks on the paging structures (#PF or
 * EPT violation) -> mode/WP/SMEP/SMAP/NX checks (#PF) -> the EPT check of the target frame
 * (an EPT-violation exit, then #PF) -> the access. A multi-page write is checked on every
 * page before the first byte is written. Also the core's own reads through the guest's
 * tables (no checks, no TLB, no exits).
 *
 * The hot path of every guest access: no closure or object per access beyond the result.
 */
import { CR0, PF_ERR } from '../../shared/x86/cpu.ts';
import { isCanonical } from '../../shared/addr.ts';
import type { AccessKind, AccessMode, GuestFault, GuestOutcome } from '../../shared/guest-cpu.ts';
import { accessMask } from '../ept/permissions.ts';
import type { Tlb, TlbEntry } from './tlb.ts';
import { checkAccess, walk } from './mmu.ts';
import { codeBits, gp, pf, stoppedOutcome, type Translation } from './faults.ts';
import type { VmCore } from '../core/vm-core.ts';

const PAGE = 4096n;
/** The EPT check of a page-walk read (hardware reads paging structures as supervisor data). */
const KERNEL_READ = accessMask('read', 'kernel');

/**
 * The registers a memory access depends on. The vCPU owns them and changes them in place;
 * its memory path reads the same object.
 */
export interface PagingRegs {
  cr0: bigint;
  cr3: bigint;
  cr4: bigint;
  efer: bigint;
  cpl: 0 | 3;
  /** EFLAGS.AC (SMAP's override for supervisor accesses to user pages). */
  ac: boolean;
}

/** The memory path of one vCPU. */
export class MemoryAccess {
  readonly #vcpu: number;
  readonly #core: VmCore;
  readonly #tlb: Tlb;
  readonly #r: PagingRegs;

  constructor(vcpu: number, core: VmCore, tlb: Tlb, regs: PagingRegs) {
    this.#vcpu = vcpu;
    this.#core = core;
    this.#tlb = tlb;
    this.#r = regs;
  }

  read(va: bigint, len: number): GuestOutcome<Uint8Array> {
    const frames = this.#translateRange(va, len, 'read');
    if (!frames.ok) return frames;
    return { ok: true, value: this.#copyOut(va, len, frames.value) };
  }

  fetch(va: bigint, len: number): GuestOutcome<Uint8Array> {
    const frames = this.#translateRange(va, len, 'fetch');
    if (!frames.ok) return frames;
    return { ok: true, value: this.#copyOut(va, len, frames.value) };
  }

  write(va: bigint, bytes: Uint8Array): GuestOutcome<void> {
    const frames = this.#translateRange(va, bytes.length, 'write');
    if (!frames.ok) return frames;
    // INVARIANT: every page of the write passed every check; now write them all.
    let done = 0;
    let off = Number(va & (PAGE - 1n));
    for (const frame of frames.value) {
      const n = Math.min(4096 - off, bytes.length - done);
      this.#core.memory.write(BigInt(frame) * PAGE + BigInt(off), bytes.subarray(done, done + n));
      done += n;
      off = 0;
    }
    return { ok: true, value: undefined };
  }

  #copyOut(va: bigint, len: number, frames: number[]): Uint8Array {
    const out = new Uint8Array(len);
    let done = 0;
    let off = Number(va & (PAGE - 1n));
    for (const frame of frames) {
      const n = Math.min(4096 - off, len - done);
      out.set(this.#core.memory.read(BigInt(frame) * PAGE + BigInt(off), n), done);
      done += n;
      off = 0;
    }
    return out;
  }

  /** Translates and checks every page of [va, va + len) for `access`; frames in order. */
  #translateRange(va: bigint, len: number, access: AccessKind): GuestOutcome<number[]> {
    const stopped = this.#stoppedFault();
    if (stopped) return stopped;
    if (!Number.isSafeInteger(len) || len < 0) {
      return gp('bad-length', `access length ${len} is not a non-negative integer`);
    }
    const frames: number[] = [];
    if (len === 0) return { ok: true, value: frames };
    const last = va + BigInt(len - 1);
    for (let page = va & ~(PAGE - 1n); page <= last; page += PAGE) {
      const t = this.#translate(page === (va & ~(PAGE - 1n)) ? va : page, access);
      if (!t.ok) return t;
      frames.push(t.frame);
    }
    return { ok: true, value: frames };
  }

  #mode(): AccessMode {
    return this.#r.cpl === 0 ? 'kernel' : 'user';
  }

  /** Translates one address and applies every check for `access`. */
  #translate(va: bigint, access: AccessKind): Translation {
    const mode = this.#mode();
    let frame: number;
    if ((this.#r.cr0 & CR0.PG) === 0n) {
      if (va < 0n || va >= 1n << 52n) return gp('non-canonical', `physical address 0x${va.toString(16)} out of range with paging off`);
      frame = Number(va >> 12n);
    } else {
      if (!isCanonical(va)) return gp('non-canonical', `address 0x${va.toString(16)} is not canonical`);
      const vpn = va >> 12n;
      let entry: TlbEntry | undefined = this.#tlb.lookup(vpn);
      if (!entry) {
        const w = walk(this.#r.cr3, va, this.#r.efer, (gpa) => this.#readPagingStructure(gpa));
        if (!w.ok) {
          if (w.kind === 'ept') return this.#eptViolation(w.gpa, va, 'read', 'kernel', true);
          return pf(va, w.errorCode | codeBits(access, mode), w.cause, w.detail);
        }
        entry = w.entry;
        this.#tlb.insert(vpn, entry);
      }
      const denied = checkAccess(entry, access, mode, this.#r.cr0, this.#r.cr4, this.#r.efer, this.#r.ac);
      if (denied) return pf(va, denied.errorCode, denied.cause, denied.detail);
      frame = entry.frame;
    }
    if (frame >= this.#core.memory.frames || !this.#core.ept.check(frame, accessMask(access, mode))) {
      return this.#eptViolation(BigInt(frame) * PAGE + (va & (PAGE - 1n)), va, access, mode, false);
    }
    return { ok: true, frame };
  }

  #readPagingStructure(gpa: bigint): { ok: true; value: bigint } | { ok: false; gpa: bigint } {
    const frame = Number(gpa >> 12n);
    // TRUST: the walk reads guest-controlled tables; the EPT must allow reading them.
    if (frame >= this.#core.memory.frames || !this.#core.ept.check(frame, KERNEL_READ)) return { ok: false, gpa };
    return { ok: true, value: this.#core.memory.readU64(gpa) };
  }

  /** Reports an EPT violation to the VMM and turns its reaction into the guest's fault. */
  #eptViolation(gpa: bigint, gva: bigint, access: AccessKind, mode: AccessMode, pageWalk: boolean): Translation {
    const frame = Number(gpa >> 12n);
    const perms = this.#core.ept.get(frame);
    const r = this.#core.exit({ reason: 'ept-violation', vcpu: this.#vcpu, gpa, gva, access, mode, perms, pageWalk });
    if (r.action === 'stop') return stoppedOutcome(r.reason);
    // Contract (exit-handlers.ts): an EPT violation is never resumed; the guest takes a #PF.
    const what = pageWalk ? 'page-table read' : access;
    return pf(gva, PF_ERR.PRESENT | codeBits(access, mode), 'ept-violation', `EPT refused ${mode} ${what} of gpa 0x${gpa.toString(16)}`);
  }

  #stoppedFault(): { ok: false; fault: GuestFault } | undefined {
    const s = this.#core.stopped;
    return s === undefined ? undefined : stoppedOutcome(s);
  }

  /**
   * Translates `va` with the guest's current page tables for the core itself, like KVM's
   * kvm_read_guest_virt(): no permission or EPT checks, no TLB, no exits. Returns the frame,
   * or undefined when the address is not mapped. TRUST: the tables are guest-controlled, so
   * the core uses this only to find what the guest points at, and authenticates contents.
   */
  translateForCore(va: bigint): number | undefined {
    if ((this.#r.cr0 & CR0.PG) === 0n) return va >= 0n && va < this.#core.memory.size ? Number(va >> 12n) : undefined;
    if (!isCanonical(va)) return undefined;
    const mem = this.#core.memory;
    const w = walk(this.#r.cr3, va, this.#r.efer, (gpa) => (mem.contains(gpa, 8) ? { ok: true, value: mem.readU64(gpa) } : { ok: false, gpa }));
    if (!w.ok || w.entry.frame >= mem.frames) return undefined;
    return w.entry.frame;
  }

  /** Copies `len` bytes at `va` for the core (see {@link translateForCore}); undefined if unmapped. */
  readForCore(va: bigint, len: number): Uint8Array | undefined {
    const out = new Uint8Array(len);
    let done = 0;
    while (done < len) {
      const at = va + BigInt(done);
      const frame = this.translateForCore(at);
      if (frame === undefined) return undefined;
      const off = Number(at & (PAGE - 1n));
      const n = Math.min(4096 - off, len - done);
      out.set(this.#core.memory.read(BigInt(frame) * PAGE + BigInt(off), n), done);
      done += n;
    }
    return out;
  }
}
