/**
 * A vCPU's memory accesses, checked in the order a CPU checks them: canonical address (#GP)
 * -> TLB, or the page walk through the guest's tables with EPT checks on the paging
 * structures (#PF or EPT violation) -> mode/WP/SMEP/SMAP/NX checks (#PF) -> the accessed and
 * dirty flags (EPT-checked writes to the tables) -> the EPT check of the target frame (an
 * EPT-violation exit, then #PF) -> the access. A multi-page write is checked on every
 * page before the first byte is written. Also the core's own reads through the guest's
 * tables (no checks, no TLB, no exits).
 *
 * The hot path of every guest access: no closure or object per access beyond the result.
 */
import { CR0, PF_ERR } from '../../shared/x86/cpu.ts';
import { gpaInFrame, gpaToGfn, isAddrError, isCanonical, pageOffset, tryGpa, type Gfn, type GuestPhysAddr, type GuestVirtAddr } from '../../shared/addr.ts';
import type { AccessKind, AccessMode, GuestFault, GuestOutcome } from '../../shared/guest-cpu.ts';
import { accessMask } from '../ept/permissions.ts';
import type { Tlb, TlbEntry } from './tlb.ts';
import { accessCodeBits, checkAccess, reservedAddressBits, walk, type PagingMemory, type WalkRegs } from './mmu.ts';
import { gp, pf, stoppedOutcome, type Translation } from './faults.ts';
import type { VmCore } from '../core/vm-core.ts';

const PAGE = 4096n;
/**
 * The EPT checks of the walk's paging-structure accesses: hardware reads the entries, and
 * writes their accessed and dirty flags, as supervisor data accesses.
 */
const KERNEL_READ = accessMask('read', 'kernel');
const KERNEL_WRITE = accessMask('write', 'kernel');

/**
 * The registers a memory access depends on. The vCPU owns them and changes them in place;
 * its memory path reads the same object.
 */
export interface PagingRegs extends WalkRegs {
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
  /** Bits MAXPHYADDR..51, reserved in every paging-structure entry. */
  readonly #rsvdAddr: bigint;
  /** The walk's EPT-checked access to the paging structures (made once, not per walk). */
  readonly #paging: PagingMemory;
  /** The core's unchecked access to them (translateForCore): reads only, writes nothing. */
  readonly #corePaging: PagingMemory;

  constructor(vcpu: number, core: VmCore, tlb: Tlb, regs: PagingRegs) {
    this.#vcpu = vcpu;
    this.#core = core;
    this.#tlb = tlb;
    this.#r = regs;
    this.#rsvdAddr = reservedAddressBits(core.physBits);
    const mem = core.memory;
    const ept = core.ept;
    // TRUST: the walk reads guest-controlled tables and writes their A/D flags; the EPT must
    // allow both, so a design that write-protects page-table pages sees the A/D write.
    this.#paging = {
      read: (gpa) => {
        const frame = gpaToGfn(gpa);
        return frame < mem.frames && ept.check(frame, KERNEL_READ) ? mem.readU64(gpa) : undefined;
      },
      write: (gpa, value) => {
        const frame = gpaToGfn(gpa);
        if (!(frame < mem.frames && ept.check(frame, KERNEL_WRITE))) return false;
        mem.writeU64(gpa, value);
        return true;
      },
    };
    this.#corePaging = {
      read: (gpa) => (mem.contains(gpa, 8) ? mem.readU64(gpa) : undefined),
      write: () => false,
    };
  }

  read(va: GuestVirtAddr, len: number): GuestOutcome<Uint8Array> {
    const frames = this.#translateRange(va, len, 'read');
    if (!frames.ok) return frames;
    return { ok: true, value: this.#copyOut(va, len, frames.value) };
  }

  fetch(va: GuestVirtAddr, len: number): GuestOutcome<Uint8Array> {
    const frames = this.#translateRange(va, len, 'fetch');
    if (!frames.ok) return frames;
    return { ok: true, value: this.#copyOut(va, len, frames.value) };
  }

  write(va: GuestVirtAddr, bytes: Uint8Array): GuestOutcome<void> {
    const frames = this.#translateRange(va, bytes.length, 'write');
    if (!frames.ok) return frames;
    // INVARIANT: every page of the write passed every check; now write them all.
    let done = 0;
    let off = pageOffset(va);
    for (const frame of frames.value) {
      const n = Math.min(4096 - off, bytes.length - done);
      this.#core.memory.write(gpaInFrame(frame, off), bytes.subarray(done, done + n));
      done += n;
      off = 0;
    }
    return { ok: true, value: undefined };
  }

  #copyOut(va: GuestVirtAddr, len: number, frames: Gfn[]): Uint8Array {
    const out = new Uint8Array(len);
    let done = 0;
    let off = pageOffset(va);
    for (const frame of frames) {
      const n = Math.min(4096 - off, len - done);
      out.set(this.#core.memory.read(gpaInFrame(frame, off), n), done);
      done += n;
      off = 0;
    }
    return out;
  }

  /** Translates and checks every page of [va, va + len) for `access`; frames in order. */
  #translateRange(va: GuestVirtAddr, len: number, access: AccessKind): GuestOutcome<Gfn[]> {
    const stopped = this.#stoppedFault();
    if (stopped) return stopped;
    if (!Number.isSafeInteger(len) || len < 0) {
      return gp('bad-length', `access length ${len} is not a non-negative integer`);
    }
    const frames: Gfn[] = [];
    if (len === 0) return { ok: true, value: frames };
    const last = va + BigInt(len - 1);
    for (let page = va & ~(PAGE - 1n); page <= last; page += PAGE) {
      // A range that runs past the canonical hole or 2^64 reaches a non-canonical page, which
      // #translate refuses (#GP) before using it: the cast names a value still to be checked.
      const t = this.#translate(page === (va & ~(PAGE - 1n)) ? va : (page as GuestVirtAddr), access);
      if (!t.ok) return t;
      frames.push(t.frame);
    }
    return { ok: true, value: frames };
  }

  /**
   * Translates one address and applies every check for `access`. A TLB hit is checked like a
   * walk; a write through an entry whose dirty flag is 0 walks again (to set D). Every #PF and
   * EPT violation drops the address's TLB entry (SDM 4.10.4.1, 29.4.3.1), so a retry after the
   * guest fixed its PTE (without invlpg, as Linux's fault handler does) walks the new tables.
   */
  #translate(va: GuestVirtAddr, access: AccessKind): Translation {
    const r = this.#r;
    const mode: AccessMode = r.cpl === 0 ? 'kernel' : 'user';
    let frame: Gfn;
    let userAddress: boolean;
    if ((r.cr0 & CR0.PG) === 0n) {
      // With paging off the linear address is the physical one.
      const pa = tryGpa(va);
      if (isAddrError(pa)) return gp('non-canonical', `physical address 0x${va.toString(16)} out of range with paging off`);
      frame = gpaToGfn(pa);
      // With CR0.PG = 0 every linear address is a user-mode linear address (SDM 29.3.3.2, MBEC).
      userAddress = true;
    } else {
      if (!isCanonical(va)) return gp('non-canonical', `address 0x${va.toString(16)} is not canonical`);
      const vpn = va >> 12n;
      let entry: TlbEntry | undefined = this.#tlb.lookup(vpn);
      if (entry !== undefined) {
        const denied = checkAccess(entry, access, mode, r);
        if (denied) {
          this.#tlb.invalidate(vpn);
          return pf(va, denied.errorCode, denied.cause, denied.detail);
        }
        if (access === 'write' && !entry.dirty) entry = undefined;
      }
      if (entry === undefined) {
        const w = walk(va, access, mode, r, this.#rsvdAddr, this.#paging, true);
        if (!w.ok) {
          this.#tlb.invalidate(vpn);
          if (w.kind === 'ept') return this.#eptViolation(w.gpa, va, w.access, 'kernel', true, access, mode);
          return pf(va, w.errorCode, w.cause, w.detail);
        }
        entry = w.entry;
        this.#tlb.insert(vpn, entry);
      }
      frame = entry.frame;
      userAddress = entry.user;
    }
    // MBEC: a fetch needs X-user when the linear address is user-mode (U/S = 1 at every level),
    // X-supervisor otherwise, whatever the CPL (SDM 29.3.3.2): a CPL 0 fetch from a user page
    // (SMEP off) needs X-user.
    const eptMode: AccessMode = access === 'fetch' ? (userAddress ? 'user' : 'kernel') : mode;
    if (frame >= this.#core.memory.frames || !this.#core.ept.check(frame, accessMask(access, eptMode))) {
      if ((r.cr0 & CR0.PG) !== 0n) this.#tlb.invalidate(va >> 12n);
      return this.#eptViolation(gpaInFrame(frame, pageOffset(va)), va, access, mode, false, access, mode);
    }
    return { ok: true, frame };
  }

  /**
   * Reports an EPT violation to the VMM and turns its reaction into the guest's fault. The
   * exit carries the refused access (for a paging-structure access: the walk's read, or its
   * accessed/dirty write, as a supervisor access with `pageWalk`); the guest's #PF carries
   * the error code of the guest's own access.
   */
  #eptViolation(
    gpa: GuestPhysAddr,
    gva: GuestVirtAddr,
    access: AccessKind,
    mode: AccessMode,
    pageWalk: boolean,
    guestAccess: AccessKind,
    guestMode: AccessMode,
  ): Translation {
    const frame = gpaToGfn(gpa);
    const perms = this.#core.ept.get(frame);
    const r = this.#core.exit({ reason: 'ept-violation', vcpu: this.#vcpu, gpa, gva, access, mode, perms, pageWalk });
    if (r.action === 'stop') return stoppedOutcome(r.reason);
    // Contract (exit-handlers.ts): an EPT violation is never resumed; the guest takes a #PF.
    const what = pageWalk ? `page-table ${access === 'write' ? 'accessed/dirty write' : 'read'}` : access;
    const code = PF_ERR.PRESENT | accessCodeBits(guestAccess, guestMode, this.#r.cr4, this.#r.efer);
    return pf(gva, code, 'ept-violation', `EPT refused ${mode} ${what} of gpa 0x${gpa.toString(16)}`);
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
   * `va` is a raw guest value (a descriptor field): validated here.
   */
  translateForCore(va: bigint): Gfn | undefined {
    if ((this.#r.cr0 & CR0.PG) === 0n) {
      const pa = tryGpa(va);
      return !isAddrError(pa) && pa < this.#core.memory.size ? gpaToGfn(pa) : undefined;
    }
    if (!isCanonical(va)) return undefined;
    // Canonical, just checked.
    const w = walk(va as GuestVirtAddr, 'read', 'kernel', this.#r, this.#rsvdAddr, this.#corePaging, false);
    if (!w.ok || w.entry.frame >= this.#core.memory.frames) return undefined;
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
      out.set(this.#core.memory.read(gpaInFrame(frame, off), n), done);
      done += n;
    }
    return out;
  }
}
