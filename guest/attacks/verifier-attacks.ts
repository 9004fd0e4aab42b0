/**
 * Attacks on the verifier VM itself: crashing it while it decides a request the attacker
 * wants through, answering a request with a verdict that belongs to another request (a
 * replayed or misrouted verdict), and flooding it with concurrent requests. The core must fail
 * closed (a request the verifier could not answer is denied, and audited as such), never apply
 * a verdict that is not for this very request, and keep serving: no flood request may slip
 * through, and a genuine request afterwards must still be decided.
 *
 * The crash and the foreign verdict are host-side by nature; the guest arms them through
 * {@link AttackHost} (the runtime's fault injection) and then does its part as a guest.
 */
import { HC, MEM_ATTR, statusName } from '../../shared/abi.ts';
import { stripModuleSignature } from '../../shared/module-signature.ts';
import { NOP5, encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import { PROT } from '../mm/kernel-mm.ts';
import type { Attack } from './attack.ts';
import { executableFrames } from './exploits.ts';
import { moduleBytes } from './module-hooks.ts';
import { VICTIM_MODULE, refusedLoad } from './module-loading.ts';
import { AttackSetupError, SHELLCODE, bytesHex, hex, mustRead, mustWrite, physOf, sameBytes, symbol } from './primitives.ts';
import { ftraceSiteOf } from './text-patching.ts';

/** Concurrent requests of the flood. */
export const FLOOD_REQUESTS = 600;

/** The verifier attacks. */
export const VERIFIER_ATTACKS: readonly Attack[] = [
  {
    name: 'crash-verifier-mid-request',
    title: 'crash the verifier VM while it decides an unsigned crc7.ko, hoping the core fails open',
    expectedStop:
      'fail closed: the request is denied with "verifier unavailable: ..." (-KVM_EPERM, heki-denial exit, audit record ok=false); the restarted verifier denies the module again',
    needs: { verifierFaults: true },
    async run(ctx) {
      const stripped = stripModuleSignature(moduleBytes(ctx, VICTIM_MODULE));
      if (!stripped.ok) throw new AttackSetupError(`cannot strip the signature: ${stripped.error.message}`);
      const file = Uint8Array.from(stripped.value);
      if (!(await ctx.host.crashVerifierOnNextRequest())) throw new AttackSetupError('the host could not arm a verifier crash (fault injection is off)');
      const during = await refusedLoad(ctx.kernel, file, 'unsigned crc7.ko while the verifier crashes');
      const counters = ctx.host.verifierCounters();
      if (counters.failClosed === 0)
        throw new AttackSetupError(`the verifier did not crash on the request (counters ${JSON.stringify(counters)}); ${during.detail}`);
      const after = await refusedLoad(ctx.kernel, file, 'the same module with the restarted verifier');
      const genuine = await ctx.kernel.modules.load(moduleBytes(ctx, VICTIM_MODULE));
      const detail = `${during.detail}; verifier counters ${JSON.stringify(ctx.host.verifierCounters())}; then ${after.detail}; then genuine crc7.ko: ${genuine.ok ? 'loaded' : genuine.error.message}`;
      const stopped = during.stopped && after.stopped;
      return { stopped, stop: stopped ? `${during.stop} (fail closed)` : during.stopped ? after.stop : during.stop, detail };
    },
  },
  {
    name: 'replay-verdict',
    title: 'have the verifier channel answer a text patch with a verdict stamped for another request',
    expectedStop:
      'the link refuses a verdict whose id is not the request\'s: fail closed, -KVM_EPERM, heki-denial exit, audit record "verifier unavailable: answer for request ..."; the site unchanged',
    needs: { verifierFaults: true },
    async run({ kernel, host }) {
      const site = ftraceSiteOf(kernel, 'commit_creds');
      const patch = { kind: 'ftrace' as const, site, oldBytes: Uint8Array.from(NOP5), newBytes: encodeCall32(site, symbol(kernel, 'ftrace_caller')) };
      const before = mustRead(kernel.cpu, site, 5);
      if (!(await host.answerNextRequestWithForeignVerdict())) throw new AttackSetupError('the host could not arm a foreign verdict (fault injection is off)');
      const replayed = await kernel.poker.poke([patch]);
      const after = mustRead(kernel.cpu, site, 5);
      // The same genuine patch once more, with an honest channel: it is allowed, so the refusal above was the replay's.
      const honest = await kernel.poker.poke([patch]);
      const detail =
        `genuine ftrace patch at ${hex(site)} answered with a foreign verdict: ${replayed.ok ? 'applied' : replayed.reason}; bytes were ${bytesHex(before)}, are ${bytesHex(after)}; ` +
        `the same patch with an honest channel: ${honest.ok ? 'applied' : honest.reason}`;
      const stopped = !replayed.ok && sameBytes(before, after);
      return {
        stopped,
        stop: stopped && !replayed.ok ? replayed.reason.replace(/ \(first denied.*\)$/, '') : 'nothing: the patch was applied on a verdict for another request',
        detail,
      };
    },
  },
  {
    name: 'flood-verifier',
    title: `flood the verifier with ${FLOOD_REQUESTS} concurrent set_memory(R|X) requests for pages holding shellcode`,
    expectedStop:
      'every request is refused (-KVM_EPERM after a verifier denial, or -KVM_EAGAIN from a bounded queue); no page becomes executable; a genuine request afterwards is still decided',
    async run({ kernel, cpu }) {
      const area = await kernel.mm.vmalloc(FLOOD_REQUESTS, PROT.RW);
      if (!area.ok) throw new AttackSetupError(`vmalloc: ${area.reason}`);
      const pages = Array.from({ length: FLOOD_REQUESTS }, (_, i) => area.value.va + BigInt(i) * 4096n);
      for (const va of pages) mustWrite(cpu, va, SHELLCODE);
      const t0 = performance.now();
      const rets = await Promise.all(pages.map((va) => cpu.vmcall(HC.HEKI_SET_MEMORY, va, 1n, BigInt(MEM_ATTR.READ | MEM_ATTR.EXEC))));
      const ms = performance.now() - t0;
      const counts = new Map<string, number>();
      for (const r of rets) counts.set(statusName(r), (counts.get(statusName(r)) ?? 0) + 1);
      const exec = executableFrames(
        kernel,
        pages.map((va) => physOf(kernel, va)),
      );
      const site = ftraceSiteOf(kernel, 'commit_creds');
      const genuine = await kernel.poker.poke([
        { kind: 'ftrace', site, oldBytes: Uint8Array.from(NOP5), newBytes: encodeCall32(site, symbol(kernel, 'ftrace_caller')) },
      ]);
      const granted = rets.filter((r) => r >= 0).length;
      const summary = [...counts].map(([k, n]) => `${n} x ${k}`).join(', ');
      const detail = `${FLOOD_REQUESTS} concurrent HEKI_SET_MEMORY(R|X) in ${ms.toFixed(0)} ms: ${summary}; executable pages afterwards: ${exec.length}; a genuine ftrace patch afterwards: ${genuine.ok ? 'allowed' : genuine.reason}`;
      const stopped = granted === 0 && exec.length === 0 && genuine.ok;
      return {
        stopped,
        stop: stopped
          ? `all ${FLOOD_REQUESTS} refused (${summary}); the verifier still serves`
          : granted > 0 || exec.length > 0
            ? `nothing: ${granted} request(s) granted, ${exec.length} page(s) executable`
            : `the verifier stopped serving after the flood: ${genuine.ok ? '' : genuine.reason}`,
        detail,
      };
    },
  },
];
