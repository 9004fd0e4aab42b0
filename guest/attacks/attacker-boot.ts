/**
 * The attacker's boot: an attacker who owns the guest kernel owns its boot code too. It makes
 * the VM reboot the way a guest can (reboot=pci's RST_CNT write, which the VMM accepts and
 * carries out: pins, locks and RAM cleared, the signed kernel loaded again), then runs the
 * kernel's boot (guest/kernel/boot.ts) with a hook that tampers with the touched-up text
 * after the touch-ups and before heki_late_init, while the text is still writable: the one
 * window in which no EPT lock stands in the way, so only the verifier's end-of-boot
 * prediction (the text Linux 6.1 writes on the VMM's CPU model) can catch it.
 *
 * INVARIANT (honesty): the tampering is read back before boot goes on; the attack counts as
 * stopped only when KVM_HC_HEKI_END_BOOT refused the text AND the VM no longer runs (the
 * VMM's policy stops a VM whose booted text the verifier refused). An accepted end of boot,
 * or a refused one after which the vCPU still executes the tampered text, is not stopped.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import { bootKernel, type TouchedUpText } from '../kernel/boot.ts';
import type { AttackContext, AttackResult } from './attack.ts';
import { AttackSetupError, bytesHex, faultLong, hex, mustRead, sameBytes } from './primitives.ts';

/** What the attacker's hook changed. */
export interface Tampering {
  /** The first site changed, in address order: the one the verifier names. */
  readonly site: bigint;
  /** The ELF section of the site's table (`.return_sites`). */
  readonly section: string;
  /** The bytes now at `site`. */
  readonly bytes: Uint8Array;
  /** How many sites were changed. */
  readonly sites: number;
  /** What was done, in words. */
  readonly what: string;
}

/** The attacker's hook: changes the touched-up text through the vCPU and says what it did. */
export type Tamper = (booting: TouchedUpText) => Tampering;

/** Reboots, boots with `tamper` after the touch-ups, and checks what became of the tampered kernel. */
export async function attackerBoot(ctx: AttackContext, tamper: Tamper): Promise<AttackResult> {
  const { kernel, cpu } = ctx;
  const image = kernel.image;
  // The RAM the kernel's own allocator manages up to: what its memory map said at boot.
  const ramBytes = kernel.mm.frames.end;
  const request = kernel.lifecycle.reboot();
  if (request.ok) throw new AttackSetupError("the VMM did not accept the guest's reset request (its policy answered inject)");
  if (request.fault.kind !== 'stopped') throw new AttackSetupError(`the reset request faulted: ${faultLong(request.fault)}`);
  const reset = await ctx.host.carryOutSystemEvent();
  if (!reset.ok) throw new AttackSetupError(`the VMM did not reset the VM: ${reset.error}`);

  let done: Tampering | undefined;
  const booted = await bootKernel(cpu, image, {
    ramBytes,
    afterTouchups: (b) => {
      const t = tamper(b);
      const now = mustRead(b.cpu, t.site, t.bytes.length);
      if (!sameBytes(now, t.bytes)) throw new AttackSetupError(`the tampering did not take: ${hex(t.site)} holds ${bytesHex(now)}, not ${bytesHex(t.bytes)}`);
      done = t;
    },
  });
  if (!done)
    throw new AttackSetupError(
      `the attacker's boot stopped before its hook ran: ${booted.ok ? 'the hook was not called' : `${booted.error.phase}: ${booted.error.message}`}`,
    );
  const steps =
    `rebooted through the reset control register (${reset.value}); the attacker's boot applied the touch-ups for its CPU, then ${done.what}: ` +
    `${done.sites} site(s), the first ${hex(done.site)} (${done.section}) now ${bytesHex(done.bytes)}`;
  if (booted.ok) return { stopped: false, stop: 'KVM_HC_HEKI_END_BOOT accepted the tampered text: the kernel runs with it under protection', detail: steps };
  const refused = booted.error.refused;
  if (refused?.step !== 'end boot')
    throw new AttackSetupError(`the attacker's boot failed elsewhere than at the end of boot: ${booted.error.phase}: ${booted.error.message}`);
  const status = `${refused.refusal.name} from KVM_HC_HEKI_END_BOOT`;
  // Does the kernel run on with the tampered text? The vCPU fetching the site says.
  const run = cpu.fetch(gvaFromRegister(done.site), done.bytes.length);
  if (run.ok) return { stopped: false, stop: `${status}, but the VM runs on: the vCPU executes the tampered text at ${hex(done.site)}`, detail: steps };
  if (run.fault.kind !== 'stopped')
    return { stopped: false, stop: `${status}, but the VM was not stopped (the fetch at ${hex(done.site)} faulted: ${faultLong(run.fault)})`, detail: steps };
  return {
    stopped: true,
    stop: `${status}; the VM is stopped`,
    detail: `${steps}; end of boot refused (${status}); the fetch at ${hex(done.site)} finds the ${faultLong(run.fault)}`,
  };
}
