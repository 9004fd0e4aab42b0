/**
 * The boot touch-up source of a vmlinux file (shared/x86/touchups/source.ts): its table
 * sections, static calls, `pv_ops` values and symbols, read from the file image and
 * System.map. In the Debian 6.1 fixture: 3,848 paravirt sites, 8,823 retpoline sites, 50,858
 * return sites, 4,667 alternatives, 9,216 lock prefixes (8,638 with a non-zero offset),
 * 4,085 static call sites.
 */
import type { CpuModel } from '../x86/cpu-model.ts';
import type { TouchupContext } from '../x86/touchups/context.ts';
import { touchupContext, touchupTables, type TouchupSource } from '../x86/touchups/source.ts';
import type { TouchupTables } from '../x86/touchups/tables.ts';
import { TextSpace, type TextRegion } from '../x86/touchups/text-space.ts';
import type { KernelImage } from './vmlinux.ts';

/** SHF_EXECINSTR. */
const SHF_EXECINSTR = 0x4;

/** The touch-up source of `image`. */
export function vmlinuxTouchupSource(image: KernelImage): TouchupSource {
  const pvOps = image.systemMap.address('pv_ops');
  const { _stext, _etext } = image.boundaries;
  const initText = image.sectionByName('.init.text');
  const ranges: (readonly [bigint, bigint])[] = [[_stext, _etext]];
  if (initText) ranges.push([initText.vaddr, initText.vaddr + BigInt(initText.size)]);
  return {
    section: (name) => image.sectionByName(name),
    staticCallSites: image.staticCalls.sites.map((s) => ({ site: s.site, key: s.key, tail: s.tail })),
    staticCallKeys: image.staticCalls.keys.map((k) => ({ key: k.key, trampoline: k.trampoline, func: k.func === undefined || k.func === 0n ? null : k.func })),
    symbol: (name) => image.systemMap.address(name),
    pvOp(type) {
      // `type` is a u8 index into `struct paravirt_patch_template pv_ops`, a table of pointers.
      if (pvOps === undefined || type < 0 || type > 255) return undefined;
      const b = image.readVirt(pvOps + BigInt(type * 8), 8);
      return b ? new DataView(b.buffer, b.byteOffset, 8).getBigUint64(0, true) : undefined;
    },
    textRanges: ranges,
  };
}

/** The tables of `image`. */
export function vmlinuxTouchupTables(image: KernelImage): TouchupTables {
  return touchupTables(vmlinuxTouchupSource(image));
}

/** The touch-up context of `image` on `model`; throws when the image lacks the retpoline or return thunks (a loaded 6.1 image has them). */
export function vmlinuxTouchupContext(image: KernelImage, model: Pick<CpuModel, 'capabilities' | 'presentCpus' | 'possibleCpus' | 'cmdline'>): TouchupContext {
  const c = touchupContext(vmlinuxTouchupSource(image), model);
  if (!c.ok) throw new Error(`INVARIANT: ${c.error}`);
  return c.value;
}

/** Writable copies of every executable section of vmlinux (the touch-ups' space). */
export function vmlinuxTextSpace(image: KernelImage): TextSpace {
  const regions: TextRegion[] = [];
  for (const s of image.sections) {
    if ((s.flags & SHF_EXECINSTR) === 0 || s.bytes.length === 0 || s.vaddr === 0n) continue;
    regions.push({ name: s.name, base: s.vaddr, bytes: Uint8Array.from(s.bytes) });
  }
  return new TextSpace(regions);
}
