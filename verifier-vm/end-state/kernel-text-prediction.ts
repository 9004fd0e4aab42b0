/**
 * The verifier's prediction of the kernel's `.text` at the end of boot, from the signed
 * manifest and the CPU model the VMM gave (never the guest), compared with every byte the
 * guest holds.
 *
 * 1. Rebuild the file image: the guest's text with the file's bytes put back at every span the
 *    touch-ups may write (`touchups.siteBytes`); every page must then hash to the manifest's
 *    digest of the file's page, so a byte changed anywhere else is found, with its page.
 * 2. Run the kernel's boot touch-ups (shared/x86/touchups/boot-touchups.ts) on that image for
 *    the model: the bytes Linux 6.1 writes on that CPU with that command line.
 * 3. Compare with the guest's text: the first differing byte is named with its site and table,
 *    and the count of differing bytes is given. At the end of boot nothing may differ: what
 *    runtime patching changes later (ftrace, static keys, static calls, kprobes) goes through
 *    its own authenticated requests.
 */
import { createHash } from 'node:crypto';
import { hex } from '../../shared/addr.ts';
import { reportProgress } from '../../shared/progress.ts';
import { type Result, err, ok } from '../../shared/result.ts';
import type { CpuModel } from '../../shared/x86/cpu-model.ts';
import { applyBootTouchups, type BootTouchupReport } from '../../shared/x86/touchups/boot-touchups.ts';
import type { TouchupContext } from '../../shared/x86/touchups/context.ts';
import { bootPatchesToUp } from '../../shared/x86/touchups/smp-locks.ts';
import { SiteOwners } from '../../shared/x86/touchups/site-owner.ts';
import { touchupContext, touchupTables, type TouchupSource } from '../../shared/x86/touchups/source.ts';
import { scatterSpans, touchupSpans } from '../../shared/x86/touchups/spans.ts';
import type { TouchupTables } from '../../shared/x86/touchups/tables.ts';
import { TextSpace } from '../../shared/x86/touchups/text-space.ts';
import type { KernelManifest, ManifestTouchups } from '../manifest.ts';

const HEX = /^[0-9a-f]{1,16}$/;

/** Pages hashed between two progress reports (a power of two; 256 pages is 1 MiB). */
const PAGE_CHUNK = 256;

/** The manifest's touch-up data, decoded once per manifest. */
interface DecodedTouchups {
  readonly source: TouchupSource;
  readonly tables: TouchupTables;
  readonly pageSize: number;
  readonly pages: Uint8Array;
  readonly siteBytes: Uint8Array;
  readonly altReplacement: { readonly vaddr: bigint; readonly bytes: Uint8Array } | undefined;
  readonly trampolines: readonly bigint[];
  readonly owners: SiteOwners;
}

const decoded = new WeakMap<KernelManifest, Result<DecodedTouchups, string>>();

function big(v: unknown, what: string): bigint {
  if (typeof v !== 'string' || !HEX.test(v)) throw new TypeError(`touchups ${what} must be a hex address`);
  return BigInt(`0x${v}`);
}

function b64(v: unknown, what: string): Uint8Array {
  if (typeof v !== 'string') throw new TypeError(`touchups ${what} must be base64`);
  return new Uint8Array(Buffer.from(v, 'base64'));
}

function decode(m: KernelManifest, t: ManifestTouchups): DecodedTouchups {
  if (typeof t !== 'object' || t === null) throw new TypeError('touchups must be an object');
  if (t.pageSize !== 4096) throw new TypeError('touchups.pageSize must be 4096');
  const sections = new Map<string, { bytes: Uint8Array; vaddr: bigint }>();
  for (const [name, s] of Object.entries(t.sections ?? {})) sections.set(name, { vaddr: big(s.vaddr, `${name}.vaddr`), bytes: b64(s.data, `${name}.data`) });
  const symbols = new Map<string, bigint>(Object.entries(t.symbols ?? {}).map(([n, a]) => [n, big(a, `symbols.${n}`)]));
  const pvOps = new Map<number, bigint>(Object.entries(t.pvOps ?? {}).map(([ty, a]) => [Number(ty), big(a, `pvOps.${ty}`)]));
  const funcs = new Map<bigint, bigint>(
    Object.entries(t.staticCallFuncs ?? {}).map(([k, f]) => [big(k, 'staticCallFuncs key'), big(f, `staticCallFuncs.${k}`)]),
  );
  const sc = m.body.staticCalls;
  const keys = (sc?.keys ?? []).map((k) => {
    const key = big(k.key, 'static call key');
    const f = funcs.get(key);
    return { key, trampoline: big(k.trampoline, 'trampoline'), func: f === undefined || f === 0n ? null : f };
  });
  const sym = (name: string): bigint | undefined =>
    symbols.get(name) ?? (typeof m.body.symbols[name] === 'string' ? big(m.body.symbols[name], name) : undefined);
  const textRanges = m.textRanges.map((r) => [r.start, r.end] as const);
  const source: TouchupSource = {
    section: (name) => sections.get(name),
    staticCallSites: (sc?.sites ?? []).map((s) => ({ site: big(s.site, 'static call site'), key: big(s.key, 'static call key'), tail: s.tail === true })),
    staticCallKeys: keys,
    symbol: sym,
    pvOp: (type) => pvOps.get(type),
    textRanges,
  };
  reportProgress();
  const tables = touchupTables(source);
  reportProgress();
  const trampolines = keys.map((k) => k.trampoline);
  const alt = sections.get('.altinstr_replacement');
  const pages = b64(t.pageSha256, 'pageSha256');
  const siteBytes = b64(t.siteBytes, 'siteBytes');
  reportProgress();
  const owners = new SiteOwners(tables, { mcountSites: [...m.mcountSites], trampolines });
  reportProgress();
  return { source, tables, pageSize: t.pageSize, pages, siteBytes, altReplacement: alt, trampolines, owners };
}

function decodedTouchups(m: KernelManifest): Result<DecodedTouchups, string> | undefined {
  const t = m.body.touchups;
  if (t === undefined) return undefined;
  let d = decoded.get(m);
  if (!d) {
    try {
      d = ok(decode(m, t));
    } catch (e) {
      d = err(`manifest touchups are malformed: ${e instanceof Error ? e.message : String(e)}`);
    }
    decoded.set(m, d);
  }
  return d;
}

/** Whether the manifest carries touch-up tables (else `.text` is checked against its digest). */
export function hasTouchups(m: KernelManifest): boolean {
  return m.body.touchups !== undefined;
}

/** What an accepted prediction found. */
export interface KernelTextMatch {
  readonly report: BootTouchupReport;
  readonly bytes: number;
}

/**
 * Predicts `.text` for `model` and compares it with `text` (the guest's bytes at `addr`).
 * The error names what differs: a page outside the touch-up sites, or the first differing
 * byte with its site and table, and how many bytes differ.
 */
export function checkPredictedText(m: KernelManifest, model: CpuModel, addr: bigint, text: Uint8Array): Result<KernelTextMatch, string> {
  const d = decodedTouchups(m);
  if (d === undefined) return err('the manifest has no touch-up tables');
  if (!d.ok) return d;
  const t = d.value;
  const stext = m.body.symbols['_stext'];
  if (typeof stext !== 'string' || big(stext, '_stext') !== addr) return err(`.text is at ${hex(addr)}, the manifest's _stext is ${String(stext)}`);
  const spans = touchupSpans(t.tables, { mcountSites: [...m.mcountSites], trampolines: t.trampolines }, addr, text.length);
  reportProgress();
  const file = Uint8Array.from(text);
  if (!scatterSpans(file, spans, t.siteBytes)) return err("the manifest's touch-up site bytes do not fit its tables");
  reportProgress();
  const pages = Math.ceil(text.length / t.pageSize);
  if (t.pages.length !== pages * 32) return err(`the manifest has ${t.pages.length / 32} page digests for a ${text.length}-byte .text (${pages} pages)`);
  for (let p = 0; p < pages; p++) {
    if ((p & (PAGE_CHUNK - 1)) === 0) reportProgress();
    const start = p * t.pageSize;
    const digest = createHash('sha256')
      .update(file.subarray(start, Math.min(file.length, start + t.pageSize)))
      .digest();
    for (let i = 0; i < 32; i++) {
      if (digest[i] !== t.pages[p * 32 + i])
        return err(`.text page ${hex(addr + BigInt(start))} differs from the signed kernel file outside every touch-up site`);
    }
  }
  const ctx = touchupContext(t.source, model);
  if (!ctx.ok) return err(ctx.error);
  const regions = [{ name: '.text', base: addr, bytes: file }];
  if (t.altReplacement) regions.push({ name: '.altinstr_replacement', base: t.altReplacement.vaddr, bytes: Uint8Array.from(t.altReplacement.bytes) });
  const space = new TextSpace(regions);
  const end = addr + BigInt(text.length);
  const report = applyBootTouchups(space, t.tables, { sites: [...m.mcountSites], fentry: m.fentry }, { start: addr, end }, ctx.value);
  reportProgress();
  let first = -1;
  let differing = 0;
  for (let i = 0; i < text.length; i++) {
    if (file[i] !== text[i]) {
      if (first < 0) first = i;
      differing++;
    }
  }
  if (first >= 0) {
    const at = addr + BigInt(first);
    const show = (b: Uint8Array): string => Buffer.from(b.subarray(first, first + 8)).toString('hex');
    return err(
      `.text differs from what Linux 6.1 writes on CPU model ${model.name} in ${differing} bytes; the first at ${hex(at)}, ${t.owners.describe(at)}: the guest holds ${show(text)}, the kernel writes ${show(file)}`,
    );
  }
  return ok({ report, bytes: text.length });
}

/**
 * The touch-up context of the manifest's kernel on `model` (its thunks, stubs, `pv_ops` and
 * static calls from the signed manifest), for module loads; undefined when the manifest has
 * no touch-up tables or they are malformed.
 */
export function manifestTouchupContext(m: KernelManifest, model: CpuModel): TouchupContext | undefined {
  // Built once per manifest and model: plugins ask for it per patch item.
  let byModel = contexts.get(m);
  if (!byModel) contexts.set(m, (byModel = new WeakMap()));
  if (byModel.has(model)) return byModel.get(model);
  const d = decodedTouchups(m);
  const c = d && d.ok ? touchupContext(d.value.source, model) : undefined;
  const value = c && c.ok ? c.value : undefined;
  byModel.set(model, value);
  return value;
}

const contexts = new WeakMap<KernelManifest, WeakMap<CpuModel, TouchupContext | undefined>>();

/** Whether boot leaves the kernel patched to UP on `model` (one CPU present, no `noreplace-smp`). */
export function bootsUniprocessor(m: KernelManifest, model: CpuModel): boolean {
  const c = manifestTouchupContext(m, model);
  return c !== undefined && bootPatchesToUp(c);
}
