/**
 * The touch-up tables of a loaded module, read from its relocated sections as
 * module_finalize() (arch/x86/kernel/module.c) and static_call_add_module()
 * (kernel/static_call_inline.c) walk them, as {@link SiteOwners}: which table owns a byte of
 * the module's text, for naming differing sites.
 */
import type { ModuleImage } from '../../shared/module/index.ts';
import { touchupTables } from '../../shared/x86/touchups/source.ts';
import type { StaticCallSiteEntry } from '../../shared/x86/touchups/tables.ts';
import { SiteOwners } from '../../shared/x86/touchups/site-owner.ts';

/** STATIC_CALL_SITE_TAIL | STATIC_CALL_SITE_INIT (include/linux/static_call_types.h). */
const SITE_FLAGS = 3n;
/** STATIC_CALL_SITE_TAIL. */
const SITE_TAIL = 1n;

/**
 * `struct static_call_site { s32 addr; s32 key; }` entries at `vaddr`: each field an offset
 * from its own address, the key's low two bits flags (static_call_key(), static_call_is_tail()).
 */
export function readStaticCallSites(bytes: Uint8Array, vaddr: bigint): StaticCallSiteEntry[] {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: StaticCallSiteEntry[] = [];
  for (let i = 0; i + 8 <= bytes.length; i += 8) {
    const entry = vaddr + BigInt(i);
    const rawKey = entry + 4n + BigInt(dv.getInt32(i + 4, true));
    out.push({ site: entry + BigInt(dv.getInt32(i, true)), key: rawKey & ~SITE_FLAGS, tail: (rawKey & SITE_TAIL) !== 0n });
  }
  return out;
}

/** Who owns each byte of `image`'s text: its tables, ftrace sites and jump labels. */
export function moduleSiteOwners(image: ModuleImage): SiteOwners {
  const byName = new Map(image.sections.map((s) => [s.name, s] as const));
  const section = (name: string): { bytes: Uint8Array; vaddr: bigint } | undefined => {
    const s = byName.get(name);
    return s && { bytes: s.bytes, vaddr: s.addr };
  };
  const sc = section('.static_call_sites');
  const tables = touchupTables({
    section,
    staticCallSites: sc ? readStaticCallSites(sc.bytes, sc.vaddr) : [],
    staticCallKeys: [],
    symbol: () => undefined,
    pvOp: () => undefined,
    textRanges: [],
  });
  return new SiteOwners(tables, { mcountSites: image.mcountSites, jumpSites: image.jumpEntries.map((e) => ({ site: e.site, len: e.len })) });
}
