/**
 * Control-register pins (Heki v3's CR pinning, after the earlier paravirtual CR-pinning
 * series): bits the guest asked to keep set. Pins only grow while the VM runs; nothing the
 * guest does clears them. Only the VMM clears them, when it resets the vCPUs (reboot, kexec).
 */
import { PINNABLE } from '../../shared/abi.ts';

/** A control register that has pinnable bits. */
export type PinnableCr = 0 | 4;

/** The pinned bits of CR0 and CR4 of one VM. */
export class CrPins {
  #cr0 = 0n;
  #cr4 = 0n;
  readonly #pinnable: Readonly<Record<PinnableCr, bigint>>;

  /**
   * `pinnable`: the bits each CR may have pinned, the personality's (default Heki's
   * PINNABLE; the Hyper-V personality's are LVBS's CR0_PIN_MASK and CR4_PIN_MASK).
   */
  constructor(pinnable: Readonly<Record<PinnableCr, bigint>> = PINNABLE) {
    this.#pinnable = pinnable;
  }

  /** Pinned bits of `cr`. */
  get(cr: PinnableCr): bigint {
    return cr === 0 ? this.#cr0 : this.#cr4;
  }

  /** Bits of `mask` that `cr` does not allow to be pinned. */
  unpinnable(cr: PinnableCr, mask: bigint): bigint {
    return mask & ~this.#pinnable[cr];
  }

  /**
   * Adds `mask` to the pins of `cr`. INVARIANT: the caller checked {@link unpinnable} is 0.
   * Pins only grow: the union is kept.
   */
  pin(cr: PinnableCr, mask: bigint): void {
    if (cr === 0) this.#cr0 |= mask;
    else this.#cr4 |= mask;
  }

  /** The pinned bits of `cr` that `value` would clear (0n when the write keeps every pin). */
  violations(cr: PinnableCr, value: bigint): bigint {
    return this.get(cr) & ~value;
  }

  /** Clears every pin. Only the VMM calls this, on a vCPU reset. */
  resetByVmm(): void {
    this.#cr0 = 0n;
    this.#cr4 = 0n;
  }
}
