/**
 * kernel-text: decides the end-of-boot `kernel-text` request. The core sends the bytes of the
 * kernel's sections as they are in memory (frozen); every section the signed manifest lists
 * must be there, once, with the manifest's name, address and size. `.text` must be, byte for
 * byte, what Linux 6.1's boot touch-ups write on the VM's CPU model (the VMM's, in
 * `ctx.vm.cpuModel`), predicted from the manifest's tables and file bytes
 * (end-state/kernel-text-prediction.ts); a manifest without touch-up tables, and every other
 * section, must match the manifest's SHA-256. Sections the manifest does not list are
 * ignored. The first mismatching manifest section (in manifest order) is named in the denial.
 *
 * On an allowed verdict, `commit` sets `ctx.vm.bootVerified` (ftrace and jump-label then stop
 * patching `.init.text`, which Linux frees after boot) and records the static keys' and static
 * calls' state the verified text holds (end-state/key-state.ts), which module loads depend on.
 */
import { hex } from '../../shared/addr.ts';
import { reportProgress } from '../../shared/progress.ts';
import type { RequestOf } from '../../shared/protocol.ts';
import type { PluginContext, PluginResult, VerifierPlugin } from '../plugin-api.ts';
import { sha256Hex } from '../signature/code-image.ts';
import { NO_MANIFEST } from './patch-sites.ts';
import { checkPredictedText, hasTouchups } from '../end-state/kernel-text-prediction.ts';
import { recordBootKeys } from '../end-state/key-state.ts';

const HEX_ADDR = /^[0-9a-f]{1,16}$/;

/** Decides one kernel-text request. Exported for tests and for plugins that wrap this policy. */
export function checkKernelText(request: RequestOf<'kernel-text'>, ctx: PluginContext): PluginResult {
  const m = ctx.manifest;
  if (!m) return { decision: 'deny', reason: NO_MANIFEST };
  const deny = (reason: string): PluginResult => ({ decision: 'deny', reason });
  if (m.body.sections.length === 0) return deny(`manifest of ${m.body.kernel} lists no sections`);
  for (const want of m.body.sections) {
    // PROGRESS: one report per section (a hash or the .text prediction, which reports more).
    reportProgress();
    const found = request.sections.filter((s) => s.name === want.name);
    if (found.length === 0) return deny(`section ${want.name} is missing from the request`);
    if (found.length > 1) return deny(`section ${want.name} appears ${found.length} times in the request`);
    const got = found[0]!;
    if (typeof want.vaddr !== 'string' || !HEX_ADDR.test(want.vaddr)) return deny(`manifest section ${want.name} has a malformed vaddr`);
    const addr = BigInt(`0x${want.vaddr}`);
    if (got.addr !== addr) return deny(`section ${want.name} is at ${hex(got.addr)}, the manifest says ${hex(addr)}`);
    if (got.bytes.length !== want.size) return deny(`section ${want.name} is ${got.bytes.length} bytes, the manifest says ${want.size}`);
    if (want.name === '.text' && hasTouchups(m)) {
      const model = ctx.vm.cpuModel;
      if (!model) return deny('the VMM gave no CPU model for this VM: the end state of .text cannot be predicted');
      const predicted = checkPredictedText(m, model, got.addr, got.bytes);
      if (!predicted.ok) return deny(predicted.error);
      continue;
    }
    const sha = sha256Hex(got.bytes);
    if (sha !== String(want.sha256).toLowerCase())
      return deny(`section ${want.name} at ${hex(addr)} differs from the manifest (sha256 ${sha}, expected ${want.sha256})`);
  }
  const how = hasTouchups(m) ? `, .text as Linux 6.1 patches it on CPU model ${ctx.vm.cpuModel?.name ?? '?'}` : '';
  return { decision: 'allow', reason: `${m.body.sections.length} sections match the manifest of ${m.body.kernel} (key ${m.keyId})${how}` };
}

/** The kernel-text plugin. */
export const kernelTextPlugin: VerifierPlugin<'kernel-text'> = {
  name: 'kernel-text',
  description: 'allows the end-of-boot check when every manifest section is present at its address with its SHA-256, then marks the boot verified',
  kinds: ['kernel-text'],
  decide(request, ctx) {
    return checkKernelText(request, ctx);
  },
  commit(request, ok, ctx) {
    if (!ok) return;
    ctx.vm.bootVerified = true;
    // The verified text is the record of the kernel's key states (end-state/key-state.ts).
    const text = request.sections.find((s) => s.name === '.text');
    if (ctx.manifest && text) recordBootKeys(ctx, ctx.manifest, text.addr, text.bytes);
  },
};
