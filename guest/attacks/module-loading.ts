/**
 * Getting code in as a module: unsigned, signed by a key the verifier does not know, signed by
 * a revoked key, one byte flipped after signing, relocated bytes that differ from what the
 * signed image gives at these addresses, bytes changed while the verdict is pending (TOCTOU),
 * code hidden in a section page's padding, a module descriptor that claims kernel
 * ro_after_init memory as module data, and code run from a module's text after it was
 * unloaded. Each uses the guest's own loader (its Heki backend hooked where the attack needs
 * to act) and checks afterwards, by fetching through an executable alias, that none of the
 * module's frames became executable.
 */
import { gvaFromRegister } from '../../shared/addr.ts';
import { KVM_STATUS, statusName } from '../../shared/abi.ts';
import { stripModuleSignature } from '../../shared/module-signature.ts';
import type { GuestOutcome } from '../../shared/guest-cpu.ts';
import type { GuestKernel } from '../kernel/guest-kernel.ts';
import type { Attack, AttackResult } from './attack.ts';
import { executableFrames, overwriteProtectedByte } from './exploits.ts';
import {
  type ValidationHooks,
  loadGenuine,
  loadModuleHooked,
  moduleBytes,
  moduleGroup,
  requestSection,
  sectionFileOffset,
  sectionIndex,
} from './module-hooks.ts';
import {
  AttackSetupError,
  EXEC_FLAGS,
  SHELLCODE,
  bytesHex,
  faultShort,
  fetchThroughExecAlias,
  hex,
  mapAlias,
  mustWrite,
  outcomeText,
  physOf,
  sameBytes,
  symbol,
} from './primitives.ts';
import { physToVirt } from '../kernel/layout.ts';

/** The module every attack here starts from: small, no dependencies, signed by Debian. */
export const VICTIM_MODULE = 'crc7';
/** Where in the module's .text the relocation attack changes a byte. */
export const RELOCATED_BYTE_OFFSET = 8n;
/** Where in the module's text page (past its 36-byte .text) the padding attack hides code. */
export const PADDING_OFFSET = 0x800n;

const DENIED = 'verifier denies the module-load request: -KVM_EPERM, heki-denial exit (verification), audit record ok=false';

/**
 * Loads `file` with `hooks` and judges it: stopped when the load was refused and no frame of
 * the module can be executed.
 */
export async function refusedLoad(kernel: GuestKernel, file: Uint8Array, what: string, hooks: ValidationHooks = {}): Promise<AttackResult> {
  const { result, captured } = await loadModuleHooked(kernel, file, hooks);
  if (!captured) throw new AttackSetupError(`the guest loader gave up before asking the hypervisor: ${result.ok ? 'no request' : result.error.message}`);
  const exec = executableFrames(kernel, captured.frames);
  const status = captured.status.ok ? '0' : captured.status.name;
  // The call that carried the request: KVM's hypercall, or the VTL call on Hyper-V VSM.
  const call = kernel.heki.hv.name === 'hyperv-vsm' ? 'VSM_VTL_CALL_FUNC_ID_VALIDATE_MODULE' : 'KVM_HC_HEKI_LOAD_MODULE';
  const detail = `${what}; ${call}: ${status}; loader: ${result.ok ? `loaded ${result.value.name}` : result.error.message}; ${captured.frames.length} section frame(s), executable afterwards: ${exec.length ? exec.map((f) => hex(f)).join(', ') : 'none'}`;
  const stopped = !result.ok && !captured.status.ok && exec.length === 0;
  if (stopped) return { stopped, stop: `${status} from ${call}`, detail };
  return { stopped, stop: result.ok ? `nothing: the module loaded` : `nothing: frame ${hex(exec[0] ?? 0n)} is executable`, detail };
}

/** The module attacks. */
export const MODULE_ATTACKS: readonly Attack[] = [
  {
    name: 'load-unsigned-module',
    title: 'load crc7.ko with its signature trailer stripped',
    expectedStop: `${DENIED}; reason: module-signature/module-pkcs7: module crc7 is not signed`,
    run(ctx) {
      const stripped = stripModuleSignature(moduleBytes(ctx, VICTIM_MODULE));
      if (!stripped.ok) throw new AttackSetupError(`cannot strip the signature: ${stripped.error.message}`);
      return refusedLoad(ctx.kernel, Uint8Array.from(stripped.value), 'crc7.ko without its signature');
    },
  },
  {
    name: 'load-module-unknown-key',
    title: "load crc7.ko re-signed with the attacker's own Ed25519 key",
    expectedStop: `${DENIED}; reason: module-signature: unknown key ...: not in the keyring`,
    run: (ctx) => refusedLoad(ctx.kernel, ctx.signers.attacker(moduleBytes(ctx, VICTIM_MODULE)), "crc7.ko signed by the attacker's key"),
  },
  {
    name: 'load-module-revoked-key',
    title: 'load crc7.ko signed with a module-signing key the keyring has revoked',
    expectedStop: `${DENIED}; reason: module-signature: key ... is revoked`,
    needs: { revokedKey: true },
    run(ctx) {
      const sign = ctx.signers.revoked;
      if (!sign) throw new AttackSetupError('the runner provided no revoked key');
      return refusedLoad(ctx.kernel, sign(moduleBytes(ctx, VICTIM_MODULE)), 'crc7.ko signed by a revoked key');
    },
  },
  {
    name: 'load-module-flipped-byte',
    title: 'load crc7.ko with one byte of its .text flipped after Debian signed it',
    expectedStop: `${DENIED}; reason: module-pkcs7: PKCS#7 signature mismatch`,
    run(ctx) {
      const file = moduleBytes(ctx, VICTIM_MODULE);
      const at = sectionFileOffset(file, '.text') + Number(RELOCATED_BYTE_OFFSET);
      file[at] = file[at]! ^ 0xff;
      return refusedLoad(ctx.kernel, file, `crc7.ko with file byte ${hex(at)} flipped`);
    },
  },
  {
    name: 'load-module-relocated-bytes-differ',
    title: 'load genuine crc7.ko but change a relocated .text byte in memory before asking the hypervisor',
    expectedStop: `${DENIED}; reason: module-end-state: relocated bytes differ from the signed image`,
    run(ctx) {
      const file = moduleBytes(ctx, VICTIM_MODULE);
      const text = sectionIndex(file, '.text');
      let note = '';
      return refusedLoad(ctx.kernel, file, 'genuine crc7.ko, .text changed in memory', {
        before(request) {
          const va = requestSection(request, text).gva + RELOCATED_BYTE_OFFSET;
          const cur = ctx.cpu.read(gvaFromRegister(va), 1);
          if (!cur.ok) throw new AttackSetupError(`cannot read the placed .text: ${outcomeText(cur)}`);
          mustWrite(ctx.cpu, va, Uint8Array.of(cur.value[0]! ^ 0xff));
          note = `byte at ${hex(va)} changed`;
        },
      }).then((r) => ({ ...r, detail: `${note}; ${r.detail}` }));
    },
  },
  {
    name: 'module-toctou',
    title: "while the load verdict is pending, write shellcode into crc7's text through its still-writable mapping",
    expectedStop: 'the write faults: an ept-violation exit on a FROZEN frame and #PF (ept-violation); the module loads with exactly the signed bytes',
    async run(ctx) {
      const file = moduleBytes(ctx, VICTIM_MODULE);
      const text = sectionIndex(file, '.text');
      const writes: Array<{ when: string; r: GuestOutcome<void> }> = [];
      const { result, captured } = await loadModuleHooked(ctx.kernel, file, {
        async during(request, pending) {
          const va = requestSection(request, text).gva;
          writes.push({ when: 'right after the hypercall was issued', r: ctx.cpu.write(gvaFromRegister(va), SHELLCODE) });
          await new Promise((r) => setImmediate(r));
          if (pending()) writes.push({ when: 'one event-loop turn later, still pending', r: ctx.cpu.write(gvaFromRegister(va), SHELLCODE) });
        },
      });
      if (!captured) throw new AttackSetupError(`the loader gave up before asking the hypervisor: ${result.ok ? '' : result.error.message}`);
      const steps = writes.map((w) => `write ${w.when}: ${outcomeText(w.r)}`);
      const landed = writes.some((w) => w.r.ok);
      let intact: boolean;
      let execNote = '';
      if (result.ok) {
        // The module is live: every placed section must hold exactly the signed, relocated bytes.
        const diffs = result.value.image.sections
          .filter((s) => !s.nobits && s.size > 0)
          .filter((s) => {
            const now = ctx.cpu.read(gvaFromRegister(s.addr), s.size);
            return !now.ok || !sameBytes(now.value, s.bytes);
          });
        intact = diffs.length === 0;
        steps.push(`module loaded; sections differing from the signed image: ${diffs.length ? diffs.map((s) => s.name).join(', ') : 'none'}`);
      } else {
        const exec = executableFrames(ctx.kernel, captured.frames);
        intact = exec.length === 0;
        execNote = `; load refused (${result.error.message}); executable frames: ${exec.length}`;
      }
      const detail = `${steps.join('; ')}${execNote}`;
      const first = writes[0]?.r;
      const stopped = writes.length > 0 && !landed && intact;
      if (stopped && first && !first.ok) return { stopped, stop: `${faultShort(first.fault)} (frame frozen while verified)`, detail };
      return {
        stopped: false,
        stop: landed ? 'nothing: a write landed while the verdict was pending' : 'nothing: the loaded bytes are not the signed ones',
        detail,
      };
    },
  },
  {
    name: 'module-unverified-padding',
    title: "hide shellcode in the padding of crc7's text page (outside every section) before validation",
    expectedStop: 'the core refuses: a granted frame holds non-zero bytes outside the sections; -KVM_EPERM, heki-denial exit, audit record ok=false',
    run(ctx) {
      const file = moduleBytes(ctx, VICTIM_MODULE);
      const text = sectionIndex(file, '.text');
      return refusedLoad(ctx.kernel, file, `genuine crc7.ko with shellcode at text page + ${hex(PADDING_OFFSET)}`, {
        before(request) {
          mustWrite(ctx.cpu, (requestSection(request, text).gva & ~0xfffn) + PADDING_OFFSET, SHELLCODE);
        },
      });
    },
  },
  {
    name: 'module-data-over-ro-after-init',
    title: 'load crc7 with a descriptor placing its writable .gnu.linkonce.this_module over the page of security_hook_heads (ro_after_init)',
    expectedStop: 'the core refuses before any verification: the descriptor names an IMMUTABLE frame (-KVM_EPERM); the page stays read-only',
    async run(ctx) {
      const file = moduleBytes(ctx, VICTIM_MODULE);
      const data = sectionIndex(file, '.gnu.linkonce.this_module');
      const victim = symbol(ctx.kernel, 'security_hook_heads');
      const page = victim & ~0xfffn;
      const { result, captured } = await loadModuleHooked(ctx.kernel, file, {
        before: (request) => ({ ...request, sections: request.sections.map((s) => (s.shndx === data ? { ...s, gva: page } : s)) }),
      });
      if (!captured) throw new AttackSetupError(`the loader gave up before asking the hypervisor: ${result.ok ? '' : result.error.message}`);
      const write = overwriteProtectedByte(ctx.kernel, victim, 'ro_after_init (security_hook_heads)');
      const status = captured.status.ok ? '0' : captured.status.name;
      const detail = `descriptor section ${data} moved to ${hex(page)}; KVM_HC_HEKI_LOAD_MODULE: ${status}; loader: ${result.ok ? 'loaded' : result.error.message}; then ${write.detail}`;
      const stopped = !result.ok && !captured.status.ok && captured.status.status === -KVM_STATUS.KVM_EPERM && write.stopped;
      return {
        stopped,
        stop: stopped
          ? `${statusName(-KVM_STATUS.KVM_EPERM)} from KVM_HC_HEKI_LOAD_MODULE`
          : `nothing: ${result.ok ? 'the module loaded over ro_after_init' : write.stop}`,
        detail,
      };
    },
  },
  {
    name: 'use-after-unload-exec',
    title: "keep an executable alias of crc7's text, unload crc7, write shellcode into the freed frame and run it through the stale alias",
    expectedStop: 'the unload makes the frame data-only: an ept-violation exit (kernel fetch) and #PF (ept-violation) through the stale alias',
    async run(ctx) {
      const { kernel, cpu } = ctx;
      const m = await loadGenuine(ctx, VICTIM_MODULE);
      const textVa = moduleGroup(m, 'text').start;
      const pa = physOf(kernel, textVa);
      const alias = mapAlias(kernel, pa, EXEC_FLAGS);
      const live = cpu.fetch(gvaFromRegister(alias), 4);
      const un = await kernel.modules.unload(m.name);
      if (!un.ok) throw new AttackSetupError(`unload refused: ${un.error.message}`);
      const w = cpu.write(gvaFromRegister(physToVirt(pa)), SHELLCODE);
      cpu.invlpg(gvaFromRegister(alias));
      const f = cpu.fetch(gvaFromRegister(alias), SHELLCODE.length);
      const again = fetchThroughExecAlias(kernel, pa, 1);
      const detail =
        `crc7 text ${hex(textVa)} -> frame ${hex(pa)}; executable alias ${hex(alias)}: fetch while loaded ${outcomeText(live)}; unloaded; ` +
        `shellcode written through the direct map: ${outcomeText(w)}; fetch through the stale alias: ${f.ok ? `fetched ${bytesHex(f.value)}` : outcomeText(f)}; through a fresh alias: ${outcomeText(again)}`;
      if (f.ok || again.ok) return { stopped: false, stop: 'nothing: the freed module frame still executes', detail };
      return { stopped: true, stop: faultShort(f.fault), detail };
    },
  },
];
