/**
 * Attacks on the kernel's boot-time text touch-ups (issue 12): the attacker's boot
 * (attacker-boot.ts) lets Linux 6.1's touch-ups run for its CPU and then rewrites what they
 * wrote, the way a compromised boot would to weaken the kernel it hands over to Heki:
 *
 * - a spectre/retbleed mitigation's alternative left unapplied (the file's original
 *   instruction put back at an `.altinstructions` site whose feature the CPU has);
 * - a mitigation's alternative applied although the CPU does not need it (the replacement of
 *   an entry whose feature the kernel did not set for this CPU, e.g. PTI on an AMD model);
 * - every return thunk turned into `ret` on a CPU that asks for the thunk (X86_FEATURE_RETHUNK);
 * - every SMP lock prefix stripped (0xf0 -> 0x3e) on a guest with more than one CPU;
 * - a paravirt site, and an inline static-call site, pointed at code of the attacker's choosing.
 *
 * Expected stop, for each: KVM_HC_HEKI_END_BOOT returns -KVM_EPERM, the verifier's reason
 * naming the site and its table, and the VMM stops the VM (its default policy on a refused
 * kernel text): the tampered kernel never runs under protection.
 *
 * The target of the redirected calls is `commit_creds`: after boot only the verified kernel
 * text is executable, so an attacker's "own code" is a kernel function used against it.
 */
import type { CpuView } from '../../shared/x86/cpuid.ts';
import {
  MITIGATION_FEATURES,
  MITIGATION_FEATURE_NAMES,
  featureLabel,
  hasMitigation,
  mitigationName,
  type MitigationFeature,
} from '../../shared/x86/cpu-features.ts';
import { encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import { ALTINSTR_FLAG_INV, alternativeApplies, applyAlternatives } from '../../shared/x86/touchups/alternatives.ts';
import { DS_PREFIX, LOCK_PREFIX } from '../../shared/x86/touchups/smp-locks.ts';
import { TOUCHUP_TABLE_SECTION, type AltInstr, type TouchupTables } from '../../shared/x86/touchups/tables.ts';
import { TextSpace } from '../../shared/x86/touchups/text-space.ts';
import { vmlinuxTouchupContext, vmlinuxTouchupTables } from '../../shared/kernel-image/touchup-tables.ts';
import type { KernelImage } from '../../shared/kernel-image/vmlinux.ts';
import type { TouchedUpText } from '../kernel/boot.ts';
import type { Attack } from './attack.ts';
import { attackerBoot, type Tampering } from './attacker-boot.ts';
import { AttackSetupError, bytesHex, hex, mustRead, mustWrite, sameBytes } from './primitives.ts';

const STOP = (table: string): string =>
  `-KVM_EPERM from KVM_HC_HEKI_END_BOOT: the verifier's prediction for the VMM's CPU model names the site and its table (${table}); heki-denial exit (verification of kernel-text), the VMM stops the VM`;

/** The function the redirected calls go to. */
const ATTACKER_TARGET = 'commit_creds';

/** The kernel's .text as the file has it, and its bounds. */
function fileText(image: KernelImage): { start: bigint; end: bigint; bytes: Uint8Array } {
  const s = image.sectionByName('.text');
  if (!s) throw new AttackSetupError('the kernel image has no .text');
  return { start: s.vaddr, end: s.vaddr + BigInt(s.size), bytes: s.bytes };
}

function inText(t: { start: bigint; end: bigint }, addr: bigint, len: number): boolean {
  return addr >= t.start && addr + BigInt(len) <= t.end;
}

/** The alternatives in .text testing feature `name` itself (not its absence). */
function alternativesOf(image: KernelImage, name: MitigationFeature): AltInstr[] {
  const t = fileText(image);
  const bit = MITIGATION_FEATURES[name];
  return vmlinuxTouchupTables(image).alternatives.filter((a) => a.cpuid === bit && a.instrlen > 0 && inText(t, a.instr, a.instrlen));
}

/** The mitigation an entry tests, for messages. */
function altLabel(a: AltInstr): string {
  const name = mitigationName(a.cpuid & ~ALTINSTR_FLAG_INV);
  return name ? featureLabel(name) : `feature ${a.cpuid >> 5}*32+${a.cpuid & 31}`;
}

/** Puts the file's original instruction back at an applied mitigation alternative. */
function unapplyMitigation({ cpu, image, bootCpuData }: TouchedUpText): Tampering {
  const file = fileText(image);
  const ctx = vmlinuxTouchupContext(image, bootCpuData);
  for (const name of MITIGATION_FEATURE_NAMES) {
    if (!hasMitigation(bootCpuData, name)) continue;
    for (const a of alternativesOf(image, name)) {
      if (!alternativeApplies(ctx, a)) continue;
      const off = Number(a.instr - file.start);
      const original = file.bytes.slice(off, off + a.instrlen);
      if (sameBytes(mustRead(cpu, a.instr, a.instrlen), original)) continue;
      mustWrite(cpu, a.instr, original);
      return {
        site: a.instr,
        section: TOUCHUP_TABLE_SECTION.alternative,
        bytes: original,
        sites: 1,
        what: `put the file's original instruction back at the ${altLabel(a)} alternative (the mitigation left unapplied)`,
      };
    }
  }
  throw new AttackSetupError('no mitigation alternative that this CPU applies changes a byte of .text');
}

/** Mitigations tried first for "applied where the CPU has no such bug": Meltdown's and MDS's (Intel only), then AMD's retbleed and SRSO untraining. */
const WITHOUT_BUG_ORDER: readonly MitigationFeature[] = [
  'PTI',
  'CLEAR_CPU_BUF',
  'UNRET',
  'SRSO',
  'SRSO_ALIAS',
  ...MITIGATION_FEATURE_NAMES.filter((n) => !['PTI', 'CLEAR_CPU_BUF', 'UNRET', 'SRSO', 'SRSO_ALIAS'].includes(n)),
];

/** The bytes apply_alternatives() would leave at `a` if the CPU had its feature. */
function replacementAt(image: KernelImage, view: CpuView, a: AltInstr, now: Uint8Array): Uint8Array {
  const repl = image.sectionByName('.altinstr_replacement');
  if (!repl) throw new AttackSetupError('the kernel image has no .altinstr_replacement');
  const capabilities = [...view.capabilities];
  const word = a.cpuid >> 5;
  capabilities[word] = (capabilities[word]! | (1 << (a.cpuid & 31))) >>> 0;
  const ctx = vmlinuxTouchupContext(image, { ...view, capabilities });
  const site = Uint8Array.from(now);
  applyAlternatives(
    new TextSpace([
      { name: '.text', base: a.instr, bytes: site },
      { name: '.altinstr_replacement', base: repl.vaddr, bytes: Uint8Array.from(repl.bytes) },
    ]),
    [a],
    ctx,
  );
  return site;
}

/** Applies the replacement of a mitigation alternative whose feature this CPU lacks. */
function applyUnneededMitigation({ cpu, image, bootCpuData }: TouchedUpText): Tampering {
  for (const name of WITHOUT_BUG_ORDER) {
    if (hasMitigation(bootCpuData, name)) continue;
    for (const a of alternativesOf(image, name)) {
      const now = mustRead(cpu, a.instr, a.instrlen);
      const patched = replacementAt(image, bootCpuData, a, now);
      if (sameBytes(now, patched)) continue;
      mustWrite(cpu, a.instr, patched);
      return {
        site: a.instr,
        section: TOUCHUP_TABLE_SECTION.alternative,
        bytes: patched,
        sites: 1,
        what: `applied the ${altLabel(a)} alternative, which the kernel did not select for this CPU`,
      };
    }
  }
  throw new AttackSetupError('no mitigation this CPU lacks has an alternative whose replacement changes .text');
}

/**
 * Rewrites every site of `sites` in .text whose current bytes `match` to `bytes`; returns the
 * first changed and the count. One read of .text, one write per site.
 */
function rewriteSites(
  b: TouchedUpText,
  sites: readonly bigint[],
  len: number,
  match: (cur: Uint8Array) => boolean,
  bytes: Uint8Array,
  section: string,
  what: string,
): Tampering {
  const file = fileText(b.image);
  const text = mustRead(b.cpu, file.start, file.bytes.length);
  let first: bigint | undefined;
  let count = 0;
  for (const site of [...sites].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))) {
    if (!inText(file, site, len)) continue;
    const off = Number(site - file.start);
    if (!match(text.subarray(off, off + len))) continue;
    mustWrite(b.cpu, site, bytes);
    first ??= site;
    count++;
  }
  if (first === undefined) throw new AttackSetupError(`no ${section} site of .text holds what ${what} rewrites`);
  return { site: first, section, bytes, sites: count, what };
}

/** Turns every `jmp <return thunk>` of `.return_sites` into `ret; int3 x4` (what 6.1 writes without RETHUNK). */
function returnThunksToRet(b: TouchedUpText): Tampering {
  const tables = vmlinuxTouchupTables(b.image);
  return rewriteSites(
    b,
    tables.returns,
    5,
    (cur) => cur[0] === 0xe9,
    Uint8Array.of(0xc3, 0xcc, 0xcc, 0xcc, 0xcc),
    TOUCHUP_TABLE_SECTION.return,
    'turned every return thunk jump into ret',
  );
}

/** Strips every `lock` prefix of `.smp_locks` (0xf0 -> 0x3e, alternatives_smp_unlock's UP form). */
function stripLockPrefixes(b: TouchedUpText): Tampering {
  const tables = vmlinuxTouchupTables(b.image);
  return rewriteSites(
    b,
    tables.smpLocks,
    1,
    (cur) => cur[0] === LOCK_PREFIX,
    Uint8Array.of(DS_PREFIX),
    TOUCHUP_TABLE_SECTION['smp-lock'],
    'stripped every SMP lock prefix (0xf0 -> 0x3e) on a multi-CPU guest',
  );
}

/** Writes `call commit_creds` at the first of `sites` (in .text, at least 5 bytes) whose bytes it changes. */
function callAttackerAt(b: TouchedUpText, sites: readonly { site: bigint; len: number }[], section: string, what: string): Tampering {
  const target = b.image.systemMap.address(ATTACKER_TARGET);
  if (target === undefined) throw new AttackSetupError(`System.map has no ${ATTACKER_TARGET}`);
  const file = fileText(b.image);
  for (const s of sites) {
    if (s.len < 5 || !inText(file, s.site, s.len)) continue;
    const call = encodeCall32(s.site, target);
    if (sameBytes(mustRead(b.cpu, s.site, 5), call)) continue;
    mustWrite(b.cpu, s.site, call);
    return { site: s.site, section, bytes: call, sites: 1, what: `${what} ${hex(s.site)} at ${ATTACKER_TARGET} (${hex(target)}: ${bytesHex(call)})` };
  }
  throw new AttackSetupError(`no ${section} site of .text can take a 5-byte call`);
}

/** The attack pointing the first site `sites` picks of table `table` at {@link ATTACKER_TARGET}. */
function redirectAttack(
  table: 'paravirt' | 'static-call',
  what: string,
  instead: string,
  sites: (t: TouchupTables) => { site: bigint; len: number }[],
): Attack {
  const section = TOUCHUP_TABLE_SECTION[table];
  return {
    name: `boot-${table}-site-to-attacker-code`,
    title: `the attacker's boot points ${what === 'paravirt site' ? 'a' : 'an'} ${what} (${section}) at code of its choosing (call ${ATTACKER_TARGET}) ${instead}`,
    expectedStop: STOP(section),
    run: (ctx) =>
      attackerBoot(ctx, (b) =>
        callAttackerAt(b, sites(vmlinuxTouchupTables(b.image)), section, `pointed the ${table === 'paravirt' ? 'paravirt' : 'static call'} site`),
      ),
  };
}

/** The boot touch-up attacks, in catalogue order. */
export const BOOT_TOUCHUP_ATTACKS: readonly Attack[] = [
  {
    name: 'boot-mitigation-alternative-unapplied',
    title:
      "the attacker's boot leaves a spectre/retbleed mitigation's alternative unapplied: the file's original instruction put back at an .altinstructions site whose feature the CPU has",
    expectedStop: STOP('.altinstructions'),
    needs: { cpu: { anyOf: MITIGATION_FEATURE_NAMES } },
    run: (ctx) => attackerBoot(ctx, unapplyMitigation),
  },
  {
    name: 'boot-alternative-without-cpu-bug',
    title:
      "the attacker's boot applies a mitigation's alternative the kernel did not select for the CPU (e.g. Meltdown's PTI on AMD, AMD's untrained return on Intel)",
    expectedStop: STOP('.altinstructions'),
    needs: { cpu: { lacksAnyOf: MITIGATION_FEATURE_NAMES } },
    run: (ctx) => attackerBoot(ctx, applyUnneededMitigation),
  },
  {
    name: 'boot-return-thunks-to-ret',
    title:
      "the attacker's boot turns every return thunk into ret on a CPU whose words ask for the thunk (X86_FEATURE_RETHUNK): retbleed/SRSO mitigation stripped",
    expectedStop: STOP('.return_sites'),
    needs: { cpu: { features: ['RETHUNK'] } },
    run: (ctx) => attackerBoot(ctx, returnThunksToRet),
  },
  {
    name: 'boot-smp-locks-stripped',
    title: "the attacker's boot strips the lock prefixes (0xf0 -> 0x3e at .smp_locks sites) of a guest with more than one CPU: atomics race between vCPUs",
    expectedStop: STOP('.smp_locks'),
    needs: { cpu: { smp: true } },
    run: (ctx) => attackerBoot(ctx, stripLockPrefixes),
  },
  redirectAttack('paravirt', 'paravirt site', 'instead of the native instruction', (t) => t.paravirt.map((p) => ({ site: p.addr, len: p.len }))),
  redirectAttack('static-call', 'inline static-call site', "instead of its key's function", (t) =>
    t.staticCalls.filter((s) => !s.tail).map((s) => ({ site: s.site, len: 5 })),
  ),
];
