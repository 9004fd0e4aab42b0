/**
 * module-end-state: decides `module-load`, `module-init-free` and `module-unload` requests,
 * `module-load` by recomputing the end state of a load. It does not trust the guest's loader; it takes the signed ELF (the
 * `module.signature` fact a signature plugin published), the addresses the guest chose, and
 * the kernel's exports from the signed manifest, and computes with the same loader core
 * (shared/module/) what every section must hold. A load is allowed when:
 *
 * 1. a signature plugin authenticated the image (else "image not authenticated");
 * 2. a manifest is loaded, and the request's name is the module's `.modinfo` name and is not
 *    loaded already;
 * 3. the placement passes `checkLayout()`: every placed section once, aligned, with its size,
 *    inside the module area, no overlap, no page shared by two permission groups; and no
 *    section overlaps a module already loaded;
 * 4. every undefined symbol resolves against the manifest's exports and the exports of the
 *    verified modules of this VM (so dependencies are loaded and verified first), and the
 *    module exports nothing already exported (Linux's "exports duplicate symbol");
 * 5. relocated at the guest's addresses, touched up as module_finalize() and the COMING
 *    notifiers do for the VMM's CPU model and the kernel's key states as the verifier recorded
 *    them (end-state/key-state.ts; shared/module/module-finalize.ts), with every ftrace site
 *    turned into the 5-byte NOP, every section's bytes equal the request's (NOBITS: zeros; an
 *    executable NOBITS section has nothing to verify and is refused). A manifest without
 *    touch-up tables (made before them) gets no touch-ups.
 *
 * The grants: text R|X|IMMUTABLE, ro R|IMMUTABLE, ro_after_init R|W (the module's init may
 * still write it, as module_enable_ro(mod, false) leaves it), rw R|W, for core and init
 * sections alike; the per-CPU section (at a per-CPU pointer, not module memory) gets none.
 * The end of init (`module-init-free`, module-init-free.ts) releases the init sections and
 * seals ro_after_init R|IMMUTABLE. `commit` records the {@link VerifiedModule} (exports, ftrace sites, jump
 * entries, text ranges, granted page ranges, SHA-256 of each text page as placed, zeros where
 * no section is, and the entry points of the functions of its core text, the static-call
 * targets it offers) and, in its plugin state, which loaded modules it links against.
 *
 * The record keeps the init layout ({@link VerifiedModule.init}) until `module-init-free`.
 *
 * An unload is allowed when the module is loaded and no loaded module links against it
 * (Linux refuses to unload a module in use); `commit` forgets it.
 *
 * TRUST: the guest chose only the addresses (and the per-CPU pointer). Bytes outside the
 * sections (alignment padding, the rest of a group's last page) are not in the request and
 * are not verified here; text pages are hashed with zeros there, so a later set-memory EXEC
 * request for such a page only passes if the padding is zero.
 */
import { MEM_ATTR } from '../../shared/abi.ts';
import { PAGE_SIZE, hex } from '../../shared/addr.ts';
import { parseElf64 } from '../../shared/elf/elf64.ts';
import type { Elf64 } from '../../shared/elf/elf64.ts';
import { SHF_EXECINSTR, STT_FUNC } from '../../shared/elf/types.ts';
import {
  PERCPU_SECTION,
  checkLayout,
  findSec,
  readModinfo,
  relocateAt,
  type GroupRange,
  type RelocatedModule,
  type SectionGroup,
} from '../../shared/module/index.ts';
import type { PlacedSection } from '../../shared/protocol.ts';
import type { RequestOf, SectionGrant } from '../../shared/protocol.ts';
import type { PluginContext, PluginResult, VerifiedModule, VerifierPlugin } from '../plugin-api.ts';
import { sha256Hex } from '../signature/code-image.ts';
import { SIGNATURE_FACT, type SignatureFact } from './module-signature-fact.ts';
import { NO_MANIFEST } from './patch-sites.ts';
import type { KernelManifest } from '../manifest.ts';
import type { ModuleTouchupEnv } from '../../shared/module/module-finalize.ts';
import { bootsUniprocessor, hasTouchups, manifestTouchupContext } from '../end-state/kernel-text-prediction.ts';
import { kernelKeyState } from '../end-state/key-state.ts';
import { reportProgress } from '../../shared/progress.ts';
import { checkModuleInitFree } from './module-init-free.ts';

/** Plugin name. */
export const MODULE_END_STATE = 'module-end-state';
/** Fact under which decide hands its computed record to commit (same request only). */
const RECORD_FACT = 'module-end-state.record';

/**
 * The kernel's state a module load is predicted with: the VMM's CPU model, the manifest's
 * thunks and stubs, UP patching, and the key states recorded since boot. Undefined for a
 * manifest without touch-up tables; a string says why no prediction can be made.
 */
function moduleTouchupEnv(ctx: PluginContext, m: KernelManifest): ModuleTouchupEnv | undefined | string {
  if (!hasTouchups(m)) return undefined;
  const model = ctx.vm.cpuModel;
  if (!model) return 'the VMM gave no CPU model for this VM: the end state of a module cannot be predicted';
  const tc = manifestTouchupContext(m, model);
  if (!tc) return "the manifest's touch-up tables are malformed";
  const keys = kernelKeyState(ctx);
  const online = (ctx.vm as { onlineCpus?: number }).onlineCpus ?? model.presentCpus;
  return {
    ctx: tc,
    uniprocessor: bootsUniprocessor(m, model) && online <= 1,
    staticKeyEnabled: (key) => keys?.jump.get(key),
    staticCallFunc: (key) => keys?.calls.get(key),
  };
}

/** MEM_ATTR bits granted per group. */
export const MODULE_GRANTS: Readonly<Record<SectionGroup, number>> = Object.freeze({
  text: MEM_ATTR.READ | MEM_ATTR.EXEC | MEM_ATTR.IMMUTABLE,
  ro: MEM_ATTR.READ | MEM_ATTR.IMMUTABLE,
  ro_after_init: MEM_ATTR.READ | MEM_ATTR.WRITE,
  rw: MEM_ATTR.READ | MEM_ATTR.WRITE,
});

/** This plugin's state per VM: for each loaded module, the loaded modules it links against. */
export type ModuleLinks = Map<string, ReadonlySet<string>>;

interface Computed {
  readonly record: VerifiedModule;
  readonly uses: ReadonlySet<string>;
  readonly grants: SectionGrant[];
  readonly reason: string;
}

function links(ctx: PluginContext): ModuleLinks | undefined {
  const s = ctx.vm.pluginState.get(MODULE_END_STATE);
  return s instanceof Map ? (s as ModuleLinks) : undefined;
}

function isSignatureFact(v: unknown): v is SignatureFact {
  return typeof v === 'object' && v !== null && (v as SignatureFact).elf instanceof Uint8Array;
}

/**
 * Recomputes the end state of a module load and compares it with the request. Exported for
 * tests and for plugins that wrap this policy.
 */
export function checkModuleLoad(request: RequestOf<'module-load'>, ctx: PluginContext): { ok: true; value: Computed } | { ok: false; reason: string } {
  const who = `module ${request.name}`;
  const deny = (reason: string): { ok: false; reason: string } => ({ ok: false, reason: `${who}: ${reason}` });
  const fact = ctx.facts.get(SIGNATURE_FACT);
  if (!isSignatureFact(fact)) return deny('image not authenticated (no signature plugin accepted it)');
  const m = ctx.manifest;
  if (!m) return deny(NO_MANIFEST);
  if (ctx.vm.modules.has(request.name)) return deny('is already loaded');
  const elf = parseElf64(fact.elf);
  if (!elf.ok) return deny(elf.error.message);
  const modinfo = readModinfo(elf.value);
  if (!modinfo.ok) return deny(modinfo.error.message);
  if (modinfo.value.name !== request.name) return deny(`the signed image's .modinfo names it ${JSON.stringify(modinfo.value.name ?? '')}`);

  // The per-CPU section is not module memory: it travels as the request's `percpu` pointer.
  const pcpu = findSec(elf.value, PERCPU_SECTION);
  const placed: PlacedSection[] =
    pcpu !== 0 && request.percpu !== undefined
      ? [
          ...request.sections.filter((s) => s.shndx !== pcpu),
          { shndx: pcpu, addr: request.percpu, size: elf.value.sections[pcpu]?.size ?? 0, bytes: new Uint8Array(0) },
        ]
      : [...request.sections];
  const layout = checkLayout(elf.value, placed);
  if (!layout.ok) return deny(layout.error.message);
  for (const s of layout.value.sections) {
    if (s.size === 0) continue;
    const end = s.addr + BigInt(s.size);
    for (const other of ctx.vm.modules.values()) {
      const hit = other.ranges.find((r) => s.addr < r.end && end > r.start);
      if (hit) return deny(`section ${s.name} [${hex(s.addr)}, ${hex(end)}) overlaps module ${other.name} [${hex(hit.start)}, ${hex(hit.end)})`);
    }
  }

  const uses = new Set<string>();
  const resolve = (sym: string): bigint | undefined => {
    const k = m.exports.get(sym);
    if (k !== undefined) return k;
    for (const mod of ctx.vm.modules.values()) {
      const a = mod.exports.get(sym);
      if (a !== undefined) {
        uses.add(mod.name);
        return a;
      }
    }
    return undefined;
  };
  const touchups = moduleTouchupEnv(ctx, m);
  if (typeof touchups === 'string') return deny(touchups);
  const r = relocateAt(elf.value, placed, resolve, m.fentry, request.name, touchups);
  reportProgress();
  if (!r.ok) {
    const missing = modinfo.value.depends.filter((d) => !ctx.vm.modules.has(d));
    const hint = r.error.kind === 'unresolved-symbol' && missing.length > 0 ? ` (depends on ${missing.join(', ')}, not loaded)` : '';
    return deny(`${r.error.message}${hint}`);
  }
  for (const name of r.value.exports.keys()) {
    if (m.exports.has(name)) return deny(`exports duplicate symbol ${name} (owned by the kernel)`);
    for (const mod of ctx.vm.modules.values()) if (mod.exports.has(name)) return deny(`exports duplicate symbol ${name} (owned by ${mod.name})`);
  }

  const byIndex = new Map(placed.map((s) => [s.shndx, s]));
  for (const want of r.value.sections) {
    const got = byIndex.get(want.shndx)!; // checkLayout: every placed section is in the request
    if (got.bytes.length === 0 && want.size > 0) {
      const exec = ((elf.value.sections[want.shndx]?.flags ?? 0) & SHF_EXECINSTR) !== 0;
      if (want.nobits && !exec) continue; // .bss: the core does not send it; it is R|W data
      return deny(`section ${want.name} has no bytes to verify`);
    }
    const at = firstDifference(want.bytes, got.bytes);
    if (at >= 0) {
      return deny(
        `section ${want.name}: relocated bytes differ from the signed image at offset ${hex(at)} (${hex(want.addr + BigInt(at))}: expected ${byteHex(want.bytes[at])}, found ${byteHex(got.bytes[at])})`,
      );
    }
  }
  if (r.value.percpu) {
    const got = byIndex.get(r.value.percpu.shndx);
    if (got && got.bytes.length > 0 && firstDifference(r.value.percpu.bytes, got.bytes) >= 0)
      return deny(`per-CPU section ${r.value.percpu.name}: initial bytes differ from the signed image`);
  }

  const ranges = layout.value.groups;
  const record = verifiedRecord(request.name, r.value, ranges, elf.value);
  const grants = r.value.sections.map((s) => ({ shndx: s.shndx, permissions: MODULE_GRANTS[s.group] }));
  const reason =
    `${who}: ${r.value.sections.length} sections match the signed image (${fact.scheme} key ${fact.keyId || '?'}) relocated at the guest's addresses; ` +
    `${r.value.mcountSites.length} ftrace sites, ${r.value.jumpEntries.length} jump entries, ${r.value.exports.size} exports`;
  return { ok: true, value: { record, uses, grants, reason } };
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  // Equal sections (the common case) are compared by memcmp; only a difference is searched for.
  if (a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength))) return -1;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const byteHex = (b: number | undefined): string => (b === undefined ? 'nothing' : `0x${b.toString(16).padStart(2, '0')}`);

/**
 * Entry points of the module's functions: STT_FUNC symbols defined in a core text section,
 * at the section's verified address. Init text is left out: Linux frees it once the module's
 * init returns, so nothing may keep pointing there.
 */
function functionEntries(elf: Elf64, r: RelocatedModule): Set<bigint> {
  const coreText = new Map<number, { addr: bigint; size: bigint }>();
  for (const s of r.sections) if (s.group === 'text' && s.part === 'core') coreText.set(s.shndx, { addr: s.addr, size: BigInt(s.size) });
  const out = new Set<bigint>();
  for (const sym of elf.symbols) {
    if (sym.type !== STT_FUNC) continue;
    const sec = coreText.get(sym.shndx);
    // TRUST: the image is authenticated, but an entry point must still lie inside verified text.
    if (sec !== undefined && sym.value < sec.size) out.add(sec.addr + sym.value);
  }
  return out;
}

/** The record kept for a verified module. */
function verifiedRecord(name: string, r: RelocatedModule, groups: readonly GroupRange[], elf: Elf64): VerifiedModule {
  const text = r.sections.filter((s) => s.group === 'text' && s.size > 0).sort((a, b) => (a.addr < b.addr ? -1 : 1));
  const textRanges: Array<{ start: bigint; end: bigint }> = [];
  for (const s of text) {
    const start = s.addr;
    const end = s.addr + BigInt(s.size);
    const last = textRanges[textRanges.length - 1];
    if (last && start <= last.end) last.end = end > last.end ? end : last.end;
    else textRanges.push({ start, end });
  }
  const textPageHashes = new Map<bigint, string>();
  const buf = new Uint8Array(PAGE_SIZE);
  for (const g of groups) {
    if (g.group !== 'text') continue;
    // Offsets from the group's start as numbers: a group spans the module area, far below 2^53.
    const inGroup = text
      .filter((s) => s.addr < g.end && s.addr + BigInt(s.size) > g.start)
      .map((s) => ({ off: Number(s.addr - g.start), size: s.size, bytes: s.bytes }));
    const span = Number(g.end - g.start);
    for (let lo = 0; lo < span; lo += PAGE_SIZE) {
      buf.fill(0);
      const hi = lo + PAGE_SIZE;
      for (const s of inGroup) {
        const from = Math.max(s.off, lo);
        const to = Math.min(s.off + s.size, hi);
        if (from < to) buf.set(s.bytes.subarray(from - s.off, to - s.off), from - lo);
      }
      textPageHashes.set(g.start + BigInt(lo), sha256Hex(buf));
    }
  }
  // 6.1 frees the init layout once the module's init returns (do_init_module), and ftrace
  // drops the sites there first (ftrace_free_mem): no runtime ftrace patch may go there.
  const initRanges = r.sections.filter((s) => s.part === 'init' && s.size > 0).map((s) => [s.addr, s.addr + BigInt(s.size)] as const);
  const inInit = (a: bigint): boolean => initRanges.some(([start, end]) => a >= start && a < end);
  const range = (g: GroupRange) => ({ start: g.start, end: g.end });
  return {
    name,
    exports: new Map(r.exports),
    mcountSites: new Set(r.mcountSites.filter((a) => !inInit(a))),
    jumpEntries: new Map(r.jumpEntries.map((j) => [j.site, { target: j.target, len: j.len }])),
    textRanges,
    ranges: groups.map((g) => ({ start: g.start, end: g.end, permissions: MODULE_GRANTS[g.group] })),
    textPageHashes,
    functions: functionEntries(elf, r),
    smpLocks: new Set(r.smpLocks),
    init: {
      // Every init section, empty ones included: the core resolved a frame for each.
      sections: r.sections.filter((s) => s.part === 'init').map((s) => s.shndx),
      ranges: groups.filter((g) => g.part === 'init').map(range),
      roAfterInit: r.sections.filter((s) => s.part === 'core' && s.group === 'ro_after_init' && s.size > 0).map((s) => s.shndx),
      roAfterInitRanges: groups.filter((g) => g.part === 'core' && g.group === 'ro_after_init').map(range),
    },
  };
}

/** Decides one unload. Exported for tests. */
export function checkModuleUnload(request: RequestOf<'module-unload'>, ctx: PluginContext): PluginResult {
  if (!ctx.vm.modules.has(request.name)) return { decision: 'deny', reason: `module ${request.name} is not loaded` };
  const users = [...(links(ctx) ?? new Map<string, ReadonlySet<string>>())]
    .filter(([user, deps]) => user !== request.name && ctx.vm.modules.has(user) && deps.has(request.name))
    .map(([u]) => u);
  if (users.length > 0) return { decision: 'deny', reason: `module ${request.name} is in use by ${users.join(', ')}` };
  return { decision: 'allow', reason: `module ${request.name} unloaded` };
}

/** The module-end-state plugin. */
export const moduleEndStatePlugin: VerifierPlugin<'module-load' | 'module-init-free' | 'module-unload'> = {
  name: MODULE_END_STATE,
  description:
    "allows an authenticated module load whose placed sections equal the signed image relocated at the guest's addresses, and grants per-group permissions; releases init memory and seals ro_after_init once init returned; tracks loaded modules for unload",
  kinds: ['module-load', 'module-init-free', 'module-unload'],
  decide(request, ctx): PluginResult {
    if (request.kind === 'module-unload') return checkModuleUnload(request, ctx);
    if (request.kind === 'module-init-free') {
      const f = checkModuleInitFree(request, ctx);
      return f.ok ? { decision: 'allow', reason: f.value.reason, grants: [...f.value.grants] } : { decision: 'deny', reason: f.reason };
    }
    const c = checkModuleLoad(request, ctx);
    if (!c.ok) return { decision: 'deny', reason: c.reason };
    ctx.facts.set(RECORD_FACT, c.value);
    return { decision: 'allow', reason: c.value.reason, grants: c.value.grants };
  },
  commit(request, ok, ctx): void {
    if (!ok) return;
    let state = links(ctx);
    if (!state) {
      state = new Map();
      ctx.vm.pluginState.set(MODULE_END_STATE, state);
    }
    if (request.kind === 'module-unload') {
      ctx.vm.modules.delete(request.name);
      state.delete(request.name);
      return;
    }
    if (request.kind === 'module-init-free') {
      const f = checkModuleInitFree(request, ctx);
      if (f.ok) ctx.vm.modules.set(request.name, f.value.record);
      return;
    }
    const fact = ctx.facts.get(RECORD_FACT) as Computed | undefined;
    const computed = fact && fact.record.name === request.name ? fact : undefined;
    const c =
      computed ??
      (() => {
        const again = checkModuleLoad(request, ctx);
        return again.ok ? again.value : undefined;
      })();
    if (!c) return; // INVARIANT: ok means decide allowed; nothing to record otherwise
    ctx.vm.modules.set(request.name, c.record);
    state.set(request.name, c.uses);
  },
};
