/**
 * VM exits: what the core hands to the VMM, and what the VMM answers.
 *
 * Each exit is a tagged union member keyed by `reason` (shared/exit-reasons.ts); the VMM
 * dispatches them through its handler table (hypervisor/vmm/exit-handlers.ts). The core
 * never decides policy: it reports, and applies the {@link Reaction}. Where a reaction makes
 * no sense for an exit (resuming an access the EPT refused), the handler table's contract
 * says what happens instead.
 */
import type { AccessKind, AccessMode, DescriptorTable } from '../../shared/guest-cpu.ts';
import type { ExitReason } from '../../shared/exit-reasons.ts';
import type { SystemEventType } from '../../shared/platform-io.ts';

/** A Heki configuration request, seen by the VMM before the core applies it. */
export type HekiConfigureRequest =
  | { readonly kind: 'lock-cr'; readonly cr: number; readonly mask: bigint }
  | {
      readonly kind: 'protect-memory';
      readonly ranges: ReadonlyArray<{ readonly pa: bigint; readonly epa: bigint; readonly permissions: number }>;
    };

/** A Heki denial: something the guest asked for or did that a lock refused. */
export type HekiDenial =
  | { readonly kind: 'cr-pin'; readonly cr: 0 | 4; readonly value: bigint; readonly cleared: bigint }
  | { readonly kind: 'immutable'; readonly frame: number; readonly requested: number; readonly current: number }
  | { readonly kind: 'bad-pin'; readonly cr: number; readonly mask: bigint }
  | { readonly kind: 'verification'; readonly request: string; readonly subject: string; readonly reason: string };

/** Which kexec slot a load fills: the kernel `kexec -e` runs, or the crash kernel a panic runs. */
export type KexecSlot = 'kexec' | 'crash';

/** A kexec image the verifier accepted, as the core hands it to the VMM (copies, not guest memory). */
export interface VerifiedKexecImage {
  /** The bzImage, as the verifier saw it. */
  readonly image: Uint8Array;
  /** The signed manifest file's text, as the verifier saw it. */
  readonly manifest: string;
  /** SHA-256 of the image, hex (equal to the manifest's vmlinuzSha256). */
  readonly sha256: string;
  /** The verdict that allowed it (its request id), for the audit trail. */
  readonly request: number;
}

/** One VM exit. */
export type VmExit =
  | {
      readonly reason: 'ept-violation';
      readonly vcpu: number;
      readonly gpa: bigint;
      /** The virtual address the guest used, when the access had one. */
      readonly gva?: bigint;
      readonly access: AccessKind;
      readonly mode: AccessMode;
      /** EPT bits of the frame at the time of the access. */
      readonly perms: number;
      /**
       * Whether the access was a paging-structure access of the page walk (the exit
       * qualification's "GPA is a paging-structure access"): a read of an entry, or the write
       * of its accessed/dirty flags (`access` says which; `mode` is then `kernel`, as hardware
       * makes these accesses).
       */
      readonly pageWalk: boolean;
    }
  | { readonly reason: 'cr-write'; readonly vcpu: number; readonly cr: 0 | 3 | 4; readonly old: bigint; readonly value: bigint; readonly changed: bigint }
  | { readonly reason: 'msr-write'; readonly vcpu: number; readonly msr: number; readonly value: bigint }
  | { readonly reason: 'msr-read'; readonly vcpu: number; readonly msr: number }
  | {
      readonly reason: 'dt-write';
      readonly vcpu: number;
      readonly table: 'idtr' | 'gdtr';
      readonly old: DescriptorTable;
      readonly value: DescriptorTable;
    }
  | { readonly reason: 'heki-configure'; readonly vcpu: number; readonly request: HekiConfigureRequest }
  | { readonly reason: 'heki-denial'; readonly vcpu: number; readonly denial: HekiDenial }
  | {
      readonly reason: 'system-event';
      readonly vcpu: number;
      readonly type: SystemEventType;
      /** What the guest did: the register and value, or the hypercall. */
      readonly source: string;
    }
  | {
      readonly reason: 'kexec-load';
      readonly vcpu: number;
      readonly slot: KexecSlot;
      /** The verified image to stage, or undefined to unload the slot. */
      readonly image: VerifiedKexecImage | undefined;
    };

/** The exit of a given reason. */
export type ExitOf<R extends ExitReason> = Extract<VmExit, { reason: R }>;

/**
 * What the VMM tells the core to do after an exit:
 * - `resume`: carry out the operation (allow a filtered write, accept a configuration);
 * - `inject`: refuse it; the guest takes the architectural fault (#GP, #PF) or, for a
 *   hypercall, the error status;
 * - `stop`: stop the VM; every vCPU operation from now on reports the stop.
 */
export type Reaction = { readonly action: 'resume' } | { readonly action: 'inject' } | { readonly action: 'stop'; readonly reason: string };

/** Who receives exits: the VMM. */
export interface ExitSink {
  /** Handles one exit; must return, never throw (a throwing VMM is treated as `stop`). */
  handleExit(exit: VmExit): Reaction;
}

/** Convenience constants. */
export const RESUME: Reaction = { action: 'resume' };
export const INJECT: Reaction = { action: 'inject' };
