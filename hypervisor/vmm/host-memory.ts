/**
 * The VMM's only way into guest memory: named, blessed copy paths.
 *
 * Every host access to guest RAM says which path it serves (`virtio-blk`, `snapshot`, ...), so
 * that a reviewer can list every place the host touches guest memory, and so that protected-
 * memory mode can refuse all of them at once. In protected mode (after the KVM protected-
 * memory RFC, 2020) guest memory is private unless the guest shared it with
 * `KVM_HC_MAP_GPA_RANGE`; a copy that touches a private page fails loudly, with a typed error
 * naming the path, the address and that the page is private, copies nothing at all, and is
 * logged and audited.
 *
 * TRUST: this class checks privacy, not the EPT. The EPT governs what the *guest* may do; a
 * device's DMA must also respect it, and that is the DMA port's job
 * (hypervisor/vmm/devices/dma-port.ts), which copies through here. The core's own accesses
 * (page lists, snapshots for the verifier) are KVM's, not the VMM's, and do not come here.
 *
 * TRUST: before the first vCPU runs, the VMM's kernel loader (kernel-loader.ts) and the test
 * machines write the initial image straight into guest memory, as a confidential VM's launch
 * does (SEV's LAUNCH_UPDATE_DATA puts the image in before the guest owns it). That is not
 * enforced here: the rule covers the running VM.
 */
import { framesOfRange, hex, type Gfn, type GuestPhysAddr } from '../../shared/addr.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import type { GuestMemory } from '../memory/guest-memory.ts';
import type { MemoryAttributesView } from '../memory/memory-attributes.ts';
import type { HostRefusalSink } from './host-refusals.ts';

/** Every copy path the VMM has. */
export const HOST_COPY_PATHS = ['virtio-blk', 'snapshot', 'migration', 'debug'] as const;
/** A named copy path. */
export type HostCopyPath = (typeof HOST_COPY_PATHS)[number];

/** Why a host copy was refused. */
export type HostMemoryError =
  | {
      readonly kind: 'private-page';
      readonly path: HostCopyPath;
      readonly access: 'read' | 'write';
      /** The address the copy asked for. */
      readonly gpa: GuestPhysAddr;
      readonly len: number;
      /** The first private frame of the range. */
      readonly frame: Gfn;
      readonly message: string;
    }
  | {
      readonly kind: 'outside-memory';
      readonly path: HostCopyPath;
      readonly access: 'read' | 'write';
      readonly gpa: GuestPhysAddr;
      readonly len: number;
      readonly message: string;
    };

/** The copy paths of one VM. */
export class HostMemory {
  readonly #memory: GuestMemory;
  readonly #attrs: MemoryAttributesView;
  readonly #sink: HostRefusalSink;

  constructor(memory: GuestMemory, attributes: MemoryAttributesView, sink: HostRefusalSink) {
    this.#memory = memory;
    this.#attrs = attributes;
    this.#sink = sink;
  }

  /** True when the VM runs in protected-memory mode. */
  get protected(): boolean {
    return this.#attrs.protected;
  }

  /** Bytes of guest memory. */
  get size(): bigint {
    return this.#memory.size;
  }

  /** True when the host may touch `frame` (it is shared, or the VM is not protected). */
  isShared(frame: Gfn): boolean {
    return !this.#attrs.isPrivate(frame);
  }

  /**
   * The first private frame of [gpa, gpa + len), or undefined when the host may touch all of
   * it. No side effect: for paths that check a whole transfer before they start (DMA).
   * INVARIANT: the caller checked that the range lies inside guest memory.
   */
  firstPrivateFrame(gpa: GuestPhysAddr, len: number): Gfn | undefined {
    if (!this.#attrs.protected || len === 0) return undefined;
    const { first, end } = framesOfRange(gpa, gpa + BigInt(len));
    for (let f = first; f < end; f++) if (this.#attrs.isPrivate(f)) return f;
    return undefined;
  }

  /** Copies `len` bytes out of guest memory for `path`; refused (and audited) on a private page. */
  copyFromGuest(path: HostCopyPath, gpa: GuestPhysAddr, len: number): Result<Uint8Array, HostMemoryError> {
    const bad = this.#check(path, 'read', gpa, len);
    if (bad) return err(bad);
    return ok(this.#memory.read(gpa, len));
  }

  /** Copies `bytes` into guest memory for `path`; refused (and audited) on a private page. */
  copyToGuest(path: HostCopyPath, gpa: GuestPhysAddr, bytes: Uint8Array): Result<void, HostMemoryError> {
    const bad = this.#check(path, 'write', gpa, bytes.length);
    if (bad) return err(bad);
    this.#memory.write(gpa, bytes);
    return ok(undefined);
  }

  #check(path: HostCopyPath, access: 'read' | 'write', gpa: GuestPhysAddr, len: number): HostMemoryError | undefined {
    if (!Number.isSafeInteger(len) || len < 0 || !this.#memory.contains(gpa, len)) {
      return {
        kind: 'outside-memory',
        path,
        access,
        gpa,
        len,
        message: `${path}: host ${access} of ${hex(gpa)}+${len} is outside guest memory [0, ${hex(this.#memory.size)})`,
      };
    }
    const frame = this.firstPrivateFrame(gpa, len);
    if (frame === undefined) return undefined;
    const message =
      `${path}: host ${access} of ${hex(gpa)}+${len} refused: frame ${hex(frame)} is private guest memory ` +
      `(protected-memory mode; the guest has not shared it with KVM_HC_MAP_GPA_RANGE)`;
    this.#sink.record({ kind: 'host-access-refused', path, access, gpa, len, frame, detail: message });
    return { kind: 'private-page', path, access, gpa, len, frame, message };
  }
}
