/**
 * Attacks on the pinned control-register bits (Heki v3 CR pinning): clearing CR0.WP (write
 * protection for the kernel), CR4.SMEP and SMAP (kernel execution of and access to user pages)
 * and UMIP, alone and together with unpinned bits in the same `mov`, and asking the
 * hypervisor for weaker pins after boot. The write must raise #GP (cause `cr-pin`), exit to
 * the VMM as a `heki-denial` of kind `cr-pin`, and change no bit at all.
 */
import { HC, HEKI_LOCK_CR_FLAG_ABI_VERSION } from '../../shared/abi.ts';
import { CR0, CR4, crBitNames } from '../../shared/x86/cpu.ts';
import type { Attack, AttackResult } from './attack.ts';
import { faultShort, hex, hypercallText, outcomeText } from './primitives.ts';
import type { GuestCpu } from '../../shared/guest-cpu.ts';

const EXPECTED = '#GP (cr-pin), heki-denial exit of kind cr-pin; the register keeps every bit';

/** One mov to CR0/CR4 clearing `clear` and flipping the unpinned `toggle`; checks the register after. */
function movClearing(cpu: GuestCpu, cr: 0 | 4, clear: bigint, toggle: bigint): AttackResult {
  const before = cpu.readCr(cr);
  const attempt = (before & ~clear) ^ toggle;
  const r = cpu.writeCr(cr, attempt);
  const after = cpu.readCr(cr);
  const what = `clearing ${crBitNames(cr, clear)}${toggle !== 0n ? ` and flipping unpinned ${crBitNames(cr, toggle)}` : ''}`;
  const detail = `mov ${hex(attempt)} to CR${cr} (${what}): ${outcomeText(r)}; CR${cr} was ${hex(before)}, is ${hex(after)}`;
  const stopped = !r.ok && after === before;
  if (stopped && !r.ok) return { stopped, stop: faultShort(r.fault), detail };
  return {
    stopped: false,
    stop: after === before ? 'nothing: the write was accepted' : `nothing: CR${cr} changed (${crBitNames(cr, before ^ after)})`,
    detail,
  };
}

function clearAttack(name: string, title: string, cr: 0 | 4, clear: bigint, toggle = 0n): Attack {
  return { name, title, expectedStop: EXPECTED, run: ({ cpu }) => Promise.resolve(movClearing(cpu, cr, clear, toggle)) };
}

/** The CR attacks. */
export const CR_PIN_ATTACKS: readonly Attack[] = [
  clearAttack('clear-cr0-wp', 'clear CR0.WP so the kernel can write to its read-only text', 0, CR0.WP),
  clearAttack('clear-cr4-smep', 'clear CR4.SMEP so the kernel can execute user pages', 4, CR4.SMEP),
  clearAttack('clear-cr4-smap', 'clear CR4.SMAP so the kernel can touch user data without stac', 4, CR4.SMAP),
  clearAttack('clear-cr4-umip', 'clear CR4.UMIP so user mode can read descriptor-table addresses', 4, CR4.UMIP),
  clearAttack('clear-cr0-wp-with-unpinned', 'clear CR0.WP and the unpinned CR0.AM in one mov, hoping the unpinned part lands', 0, CR0.WP, CR0.AM),
  clearAttack(
    'clear-cr4-pins-with-unpinned',
    'clear CR4.SMEP|SMAP|UMIP and set the unpinned VME and PCE in one mov',
    4,
    CR4.SMEP | CR4.SMAP | CR4.UMIP,
    CR4.VME | CR4.PCE,
  ),
  {
    name: 'relock-cr-weaker',
    title: 'after boot, re-lock CR4 with SMEP only and clear SMAP and UMIP; re-lock CR0 with nothing and clear WP',
    expectedStop: 'LOCK_CR_UPDATE never removes a pin (pins only grow); the later clears take #GP (cr-pin) with heki-denial exits',
    async run({ cpu }) {
      const abi = await cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, 0n, BigInt(HEKI_LOCK_CR_FLAG_ABI_VERSION));
      const weaker4 = await cpu.vmcall(HC.LOCK_CR_UPDATE, 4n, CR4.SMEP, 0n);
      const cr4 = movClearing(cpu, 4, CR4.SMAP | CR4.UMIP, 0n);
      const none0 = await cpu.vmcall(HC.LOCK_CR_UPDATE, 0n, 0n, 0n);
      const cr0 = movClearing(cpu, 0, CR0.WP, 0n);
      const detail =
        `ABI version ${abi}; LOCK_CR_UPDATE(CR4, SMEP): ${hypercallText(HC.LOCK_CR_UPDATE, weaker4)}; then ${cr4.detail}; ` +
        `LOCK_CR_UPDATE(CR0, nothing): ${hypercallText(HC.LOCK_CR_UPDATE, none0)}; then ${cr0.detail}`;
      const stopped = cr4.stopped && cr0.stopped;
      return { stopped, stop: stopped ? `pins only grow: ${cr4.stop}` : `nothing: ${cr4.stopped ? cr0.stop : cr4.stop}`, detail };
    },
  },
];
