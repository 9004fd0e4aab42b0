/**
 * The end of a module's init (6.1's do_init_module() once `mod->init` returned), as the
 * module-end-state plugin decides a `module-init-free` request:
 *
 * - `mod->state = MODULE_STATE_LIVE`: jump-label and static-call sites in init memory are no
 *   longer updated (jump_label_can_update(), __static_call_update() with `init` false);
 * - ftrace_free_mem() over the init layout: its ftrace records go;
 * - module_enable_ro(mod, true): the core ro_after_init group becomes read-only;
 * - mod_tree_remove_init() and do_free_init(): the init layout is freed, so a later module may
 *   be loaded there.
 *
 * Allowed once per load, for a loaded module whose init layout the verifier recorded. The
 * grants release every init section (R+W: data-only) and seal every non-empty core
 * ro_after_init section (R+IMMUTABLE). `commit` replaces the module's record by one without
 * the init layout: its ranges, text ranges, text page hashes, jump entries, lock prefixes
 * and ftrace sites there are gone, so a patch into freed init text is denied and a later
 * load may overlap that memory; the ro_after_init ranges carry the sealed permissions.
 */
import { MEM_ATTR } from '../../shared/abi.ts';
import type { RequestOf, SectionGrant } from '../../shared/protocol.ts';
import type { PluginContext, VerifiedModule } from '../plugin-api.ts';

/** What the end of init grants: init sections released, ro_after_init sealed. */
export const INIT_FREE_GRANTS = Object.freeze({ release: MEM_ATTR.READ | MEM_ATTR.WRITE, seal: MEM_ATTR.READ | MEM_ATTR.IMMUTABLE });

/** A decided end of init: the grants and the record the module keeps. */
export interface InitFreeDecision {
  readonly grants: readonly SectionGrant[];
  readonly record: VerifiedModule;
  readonly reason: string;
}

type Range = { readonly start: bigint; readonly end: bigint };

const within = (a: bigint, rs: readonly Range[]): boolean => rs.some((r) => a >= r.start && a < r.end);

/** The record of `m` once its init layout is freed and its ro_after_init sealed. */
export function recordAfterInit(m: VerifiedModule): VerifiedModule {
  const init = m.init;
  if (!init) return m;
  const gone = init.ranges;
  const { init: _dropped, ...rest } = m;
  void _dropped;
  return {
    ...rest,
    mcountSites: new Set([...m.mcountSites].filter((a) => !within(a, gone))),
    jumpEntries: new Map([...m.jumpEntries].filter(([site]) => !within(site, gone))),
    textRanges: m.textRanges.filter((r) => !within(r.start, gone)),
    ranges: m.ranges
      .filter((r) => !within(r.start, gone))
      .map((r) => (within(r.start, init.roAfterInitRanges) ? { ...r, permissions: INIT_FREE_GRANTS.seal } : r)),
    textPageHashes: new Map([...m.textPageHashes].filter(([page]) => !within(page, gone))),
    ...(m.smpLocks ? { smpLocks: new Set([...m.smpLocks].filter((a) => !within(a, gone))) } : {}),
    ...(m.functions ? { functions: new Set([...m.functions].filter((a) => !within(a, gone))) } : {}),
  };
}

/** Decides one end of init. */
export function checkModuleInitFree(
  request: RequestOf<'module-init-free'>,
  ctx: PluginContext,
): { ok: true; value: InitFreeDecision } | { ok: false; reason: string } {
  const who = `module ${request.name}`;
  const m = ctx.vm.modules.get(request.name);
  if (!m) return { ok: false, reason: `${who} is not loaded` };
  // INVARIANT: once per load. A second request would release memory a later load may own now.
  if (!m.init) return { ok: false, reason: `${who}: its init memory is already freed` };
  const grants = [
    ...m.init.sections.map((shndx) => ({ shndx, permissions: INIT_FREE_GRANTS.release })),
    ...m.init.roAfterInit.map((shndx) => ({ shndx, permissions: INIT_FREE_GRANTS.seal })),
  ];
  const pages = m.init.ranges.reduce((n, r) => n + Number((r.end - r.start) >> 12n), 0);
  const reason = `${who}: init returned; ${m.init.sections.length} init sections (${pages} pages) released, ${m.init.roAfterInit.length} ro_after_init sections sealed`;
  return { ok: true, value: { grants, record: recordAfterInit(m), reason } };
}
