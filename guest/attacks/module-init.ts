/**
 * A module's init memory after its init returned: the guest's loader freed the init layout
 * (do_init_module()), and the hypervisor released its frames as plain data. The attacker
 * noted the frame of the module's `.init.text` while the module loaded, and then either runs
 * code there again (the old init code, or shellcode written into the freed frame) through an
 * executable alias of its own, or ftrace-patches an `__mcount_loc` site of the freed init text.
 */
import { encodeCall32 } from '../../shared/x86/patch-encodings.ts';
import type { LoadedModule } from '../modules/module-loader.ts';
import { physToVirt } from '../kernel/layout.ts';
import type { Attack, AttackContext } from './attack.ts';
import { loadModuleHooked, moduleBytes, requestSection, sectionIndex } from './module-hooks.ts';
import { AttackSetupError, SHELLCODE, bytesHex, faultShort, fetchThroughExecAlias, hex, mustRead, outcomeText, sameBytes, symbol } from './primitives.ts';
import { gva } from '../../shared/addr.ts';

/** The module both attacks load: small, no dependencies, with an init function that ftrace traces. */
export const INIT_VICTIM_MODULE = 'failover';

/** Loads the victim and returns it with the physical address of its `.init.text`, noted during the load. */
async function loadNotingInitText(ctx: AttackContext): Promise<{ m: LoadedModule; initTextVa: bigint; initTextPa: bigint }> {
  const file = moduleBytes(ctx, INIT_VICTIM_MODULE);
  const initText = sectionIndex(file, '.init.text');
  let noted: { va: bigint; pa: bigint } | undefined;
  const { result } = await loadModuleHooked(ctx.kernel, file, {
    before(request) {
      const va = requestSection(request, initText).gva;
      const pa = ctx.kernel.mm.frameOf(va);
      if (pa !== undefined) noted = { va, pa: (BigInt(pa) << 12n) | (va & 0xfffn) };
      return request;
    },
  });
  if (!result.ok) throw new AttackSetupError(`the genuine module ${INIT_VICTIM_MODULE} did not load: ${result.error}`);
  if (!noted) throw new AttackSetupError(`${INIT_VICTIM_MODULE}'s .init.text was not mapped during the load`);
  if (result.value.init !== undefined) throw new AttackSetupError(`${INIT_VICTIM_MODULE}'s init memory was not freed after its init`);
  return { m: result.value, initTextVa: noted.va, initTextPa: noted.pa };
}

/** The module init attacks. */
export const MODULE_INIT_ATTACKS: readonly Attack[] = [
  {
    name: 'exec-freed-module-init-text',
    title:
      "note the frame of failover's .init.text while it loads; once its init memory is freed, run the old init code and then shellcode written there, through an executable alias",
    expectedStop: 'the end of init made the frame data-only: ept-violation exits (kernel fetch) and #PF (ept-violation) through the alias',
    async run(ctx) {
      const { kernel, cpu } = ctx;
      const { initTextVa, initTextPa } = await loadNotingInitText(ctx);
      const old = fetchThroughExecAlias(kernel, initTextPa, 4);
      // The freed frame is ordinary memory now: writing it is allowed, running it must not be.
      const w = cpu.write(gva(physToVirt(initTextPa)), SHELLCODE);
      const shell = fetchThroughExecAlias(kernel, initTextPa, SHELLCODE.length);
      const detail =
        `${INIT_VICTIM_MODULE} .init.text was ${hex(initTextVa)} -> ${hex(initTextPa)}; init freed; fetch of the old init code through an executable alias: ${old.ok ? `fetched ${bytesHex(old.value)}` : outcomeText(old)}; ` +
        `shellcode written through the direct map: ${outcomeText(w)}; fetch through a fresh alias: ${shell.ok ? `fetched ${bytesHex(shell.value)}` : outcomeText(shell)}`;
      if (old.ok || shell.ok) return { stopped: false, stop: 'nothing: the freed init frame still executes', detail };
      return { stopped: true, stop: faultShort(old.fault), detail };
    },
  },
  {
    name: 'ftrace-freed-module-init-site',
    title: "ftrace-patch a call to ftrace_caller into an __mcount_loc site of failover's .init.text after its init memory was freed",
    expectedStop:
      'the core refuses without asking the verifier (the freed init text left its map of verified text): -KVM_EPERM, heki-denial exit, audit record ok=false from plugin core; the frame unchanged',
    async run(ctx) {
      const { kernel } = ctx;
      const { m, initTextVa, initTextPa } = await loadNotingInitText(ctx);
      const init = m.image.groups.filter((g) => g.part === 'init' && g.group === 'text');
      const site = m.image.mcountSites.find((a) => init.some((g) => a >= g.start && a < g.end));
      if (site === undefined) throw new AttackSetupError(`${INIT_VICTIM_MODULE} has no ftrace site in .init.text`);
      // The site's bytes, read where they still are: the freed frame, through the direct map.
      const at = physToVirt(initTextPa + (site - initTextVa));
      const before = mustRead(kernel.cpu, at, 5);
      const r = await kernel.poker.poke([{ kind: 'ftrace', site, oldBytes: before, newBytes: encodeCall32(site, symbol(kernel, 'ftrace_caller')) }]);
      const after = mustRead(kernel.cpu, at, 5);
      const changed = !sameBytes(before, after);
      const detail = `ftrace patch at ${hex(site)} (freed ${INIT_VICTIM_MODULE} .init.text, frame ${hex(initTextPa & ~0xfffn)}): ${r.ok ? 'applied' : r.reason}; bytes were ${bytesHex(before)}, are ${bytesHex(after)}`;
      const stopped = !r.ok && !changed;
      return { stopped, stop: stopped && !r.ok ? r.reason.replace(/ \(first denied.*\)$/, '') : 'nothing: the patch was applied', detail };
    },
  },
];
