/**
 * Values the branded address types (shared/addr.ts) would refuse, for the tests of the run-time
 * checks behind them. Brands are erased at run time and guest code is the attacker, so the
 * vCPU, the EPT and the copy paths still check what they are given: these tests pass what a
 * forged (cast) value would carry and assert the check stops it.
 */
import type { Gfn, GuestPhysAddr, GuestVirtAddr } from '../../shared/addr.ts';

/** A non-canonical (or negative) "virtual address", as a forged value would be. */
export function forgedGva(value: bigint): GuestVirtAddr {
  return value as GuestVirtAddr;
}

/** A negative or beyond-MAXPHYADDR "physical address", as a forged value would be. */
export function forgedGpa(value: bigint): GuestPhysAddr {
  return value as GuestPhysAddr;
}

/** A negative, fractional or NaN "frame number", as a forged value would be. */
export function forgedGfn(value: number): Gfn {
  return value as Gfn;
}
