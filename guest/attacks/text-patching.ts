/**
 * Abusing the authenticated text-patch path (ftrace, jump labels, kprobes): the guest asks
 * the hypervisor to write text for it, so an attacker tries to make it write something other
 * than a legitimate patch: an ftrace `call` at an address that is not an `__mcount_loc` site,
 * with old bytes that are not what memory holds, to a target that is not an ftrace
 * trampoline, or at a site in freed .init.text; a jump label to a foreign target; an int3 on a
 * site the kprobe policy denies; and a "patch" of .rodata. Each goes through the kernel's own
 * TextPoker (the KVM_HC_HEKI_TEXT_PATCH batch) and checks afterwards that the bytes at the
 * site are unchanged.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import type { PatchRequest } from '../../shared/heki-descriptors.ts';
import { NOP5, encodeCall32, encodeJmp32 } from '../../shared/x86/patch-encodings.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';
import type { PokeResult } from '../patching/text-poker.ts';
import type { Attack, AttackResult } from './attack.ts';
import { AttackSetupError, bytesHex, hex, mustRead, sameBytes, symbol } from './primitives.ts';

const DENIED = 'verifier denies the text-patch batch: -KVM_EPERM, heki-denial exit (verification), audit record ok=false';

/** The ftrace site of `func` (its `call __fentry__`, now a NOP). */
export function ftraceSiteOf(kernel: GuestKernel, func: string): bigint {
  const start = symbol(kernel, func);
  const site = kernel.image.mcountSites.find((s) => s.address >= start && s.address < start + 16n);
  if (!site) throw new AttackSetupError(`${func} has no ftrace site`);
  return site.address;
}

/** An address inside commit_creds that is no patch site: 0x10 past its ftrace site. */
export function nonSiteAddress(kernel: GuestKernel): bigint {
  const a = ftraceSiteOf(kernel, 'commit_creds') + 0x10n;
  if (kernel.image.mcountSites.some((s) => s.address > a - 5n && s.address < a + 5n)) throw new AttackSetupError(`${hex(a)} overlaps an ftrace site`);
  return a;
}

/** The first 5-byte jump label of kernel .text that holds the NOP now. */
export function nopJumpLabel(kernel: GuestKernel): { site: bigint; target: bigint } {
  const text = kernel.image.sectionByName('.text');
  if (!text) throw new AttackSetupError('no .text');
  for (const e of kernel.image.jumpEntries) {
    if (e.length !== 5 || e.site < text.vaddr || e.site >= text.vaddr + BigInt(text.size)) continue;
    const cur = kernel.cpu.read(gvaFromRegister(e.site), 5);
    if (cur.ok && sameBytes(cur.value, Uint8Array.from(NOP5))) return { site: e.site, target: e.target };
  }
  throw new AttackSetupError('no 5-byte jump label holds a NOP');
}

/** The first ftrace site in .init.text. */
export function initTextSite(kernel: GuestKernel): bigint {
  const s = kernel.image.mcountSites.find((x) => x.section === '.init.text');
  if (!s) throw new AttackSetupError('no ftrace site in .init.text');
  return s.address;
}

function pokeResultText(r: PokeResult): string {
  return r.ok ? `applied (${r.patches} patch(es))` : r.reason;
}

/** Sends `patch` through the kernel's TextPoker and checks the site afterwards. */
async function pokeAndCheck(kernel: GuestKernel, patch: PatchRequest, what: string): Promise<AttackResult> {
  const before = mustRead(kernel.cpu, patch.site, patch.newBytes.length);
  const r = await kernel.poker.poke([patch]);
  const after = mustRead(kernel.cpu, patch.site, patch.newBytes.length);
  const changed = !sameBytes(before, after);
  const detail = `${what}: ${patch.kind} patch at ${hex(patch.site)} (${kernel.image.symbolize(patch.site)}), old ${bytesHex(patch.oldBytes)} -> new ${bytesHex(patch.newBytes)}: ${pokeResultText(r)}; bytes were ${bytesHex(before)}, are ${bytesHex(after)}`;
  const stopped = !r.ok && !changed;
  return {
    stopped,
    stop:
      stopped && !r.ok
        ? r.reason.replace(/ \(first denied.*\)$/, '')
        : changed
          ? `nothing: the site now holds ${bytesHex(after)}`
          : 'nothing: the patch was applied',
    detail,
  };
}

/** The text-patching attacks. */
export const TEXT_PATCH_ATTACKS: readonly Attack[] = [
  {
    name: 'ftrace-non-site',
    title: 'ftrace-patch a call to ftrace_caller into the middle of commit_creds (not an __mcount_loc site)',
    expectedStop: `${DENIED}; reason: ftrace: ... is not an ftrace site`,
    run({ kernel }) {
      const site = nonSiteAddress(kernel);
      const old = mustRead(kernel.cpu, site, 5);
      return pokeAndCheck(kernel, { kind: 'ftrace', site, oldBytes: old, newBytes: encodeCall32(site, symbol(kernel, 'ftrace_caller')) }, 'a non-site address');
    },
  },
  {
    name: 'ftrace-wrong-old-bytes',
    title: "ftrace-patch commit_creds's site claiming it holds a call when it holds the NOP",
    expectedStop: `${DENIED}; reason: ftrace: old bytes differ from memory`,
    run({ kernel }) {
      const site = ftraceSiteOf(kernel, 'commit_creds');
      const trampoline = symbol(kernel, 'ftrace_caller');
      return pokeAndCheck(
        kernel,
        { kind: 'ftrace', site, oldBytes: encodeCall32(site, symbol(kernel, '__fentry__')), newBytes: encodeCall32(site, trampoline) },
        'wrong old bytes',
      );
    },
  },
  {
    name: 'ftrace-non-trampoline-target',
    title: "ftrace-patch commit_creds's site into a call to native_write_cr4 (not an ftrace trampoline)",
    expectedStop: `${DENIED}; reason: ftrace: call to ..., which is not an ftrace trampoline`,
    run({ kernel }) {
      const site = ftraceSiteOf(kernel, 'commit_creds');
      return pokeAndCheck(
        kernel,
        { kind: 'ftrace', site, oldBytes: Uint8Array.from(NOP5), newBytes: encodeCall32(site, symbol(kernel, 'native_write_cr4')) },
        'a foreign call target',
      );
    },
  },
  {
    name: 'ftrace-freed-init-site',
    title: 'ftrace-patch a site in .init.text, which was freed at the end of boot',
    expectedStop:
      'the core refuses without asking the verifier (freed .init.text is not in its map of verified text): -KVM_EPERM, heki-denial exit, audit record ok=false from plugin core',
    run({ kernel }) {
      const site = initTextSite(kernel);
      const old = mustRead(kernel.cpu, site, 5);
      return pokeAndCheck(
        kernel,
        { kind: 'ftrace', site, oldBytes: old, newBytes: encodeCall32(site, symbol(kernel, 'ftrace_caller')) },
        'a freed .init.text site',
      );
    },
  },
  {
    name: 'jump-label-foreign-target',
    title: 'patch a 5-byte jump label into a jmp to commit_creds instead of its own target',
    expectedStop: `${DENIED}; reason: jump-label: jump to foreign target`,
    run({ kernel }) {
      const { site } = nopJumpLabel(kernel);
      return pokeAndCheck(
        kernel,
        { kind: 'jump-label', site, oldBytes: Uint8Array.from(NOP5), newBytes: encodeJmp32(site, symbol(kernel, 'commit_creds')) },
        'a jump label to a foreign target',
      );
    },
  },
  {
    name: 'kprobe-denied-site',
    title: 'install a kprobe (int3) inside commit_creds, which the kprobe policy does not allow',
    expectedStop: `${DENIED}; reason: kprobe: ... is not in an allowed range (default deny)`,
    async run({ kernel }) {
      const site = nonSiteAddress(kernel);
      const before = mustRead(kernel.cpu, site, 1);
      const r = await kernel.kprobes.install(site);
      const after = mustRead(kernel.cpu, site, 1);
      const detail = `kprobe at ${hex(site)} (${kernel.image.symbolize(site)}): ${pokeResultText(r)}; byte was ${bytesHex(before)}, is ${bytesHex(after)}`;
      const stopped = !r.ok && sameBytes(before, after);
      return { stopped, stop: stopped && !r.ok ? r.reason.replace(/ \(first denied.*\)$/, '') : 'nothing: the int3 was written', detail };
    },
  },
  {
    name: 'text-patch-outside-verified-text',
    title: 'send a "text patch" whose site is sys_call_table in .rodata, to have the hypervisor write it',
    expectedStop:
      'the core refuses without asking the verifier (the site is not verified text): -KVM_EPERM, heki-denial exit, audit record ok=false from plugin core',
    run({ kernel }) {
      const site = symbol(kernel, 'sys_call_table');
      const old = mustRead(kernel.cpu, site, 5);
      return pokeAndCheck(
        kernel,
        { kind: 'ftrace', site, oldBytes: old, newBytes: encodeCall32(site, symbol(kernel, 'commit_creds')) },
        '.rodata as a patch site',
      );
    },
  },
];
