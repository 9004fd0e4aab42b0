/**
 * set-memory: decides every range of a `set-memory` request (set_memory_ro/rw/x/nx, vmap
 * permission changes after boot). A range is allowed when its address is page-aligned, it has
 * at least one page, the requested bits are known ABI bits, and:
 *
 * - W^X: the requested bits never hold WRITE together with EXEC or EXEC_USER;
 * - a page whose current bits hold IMMUTABLE may only be "changed" to exactly its current bits;
 * - taking bits away (requested a subset of current) is allowed;
 * - adding READ, WRITE (the result is then non-executable, by W^X: data) or IMMUTABLE is allowed;
 * - adding EXEC or EXEC_USER is allowed only for authenticated content: the page lies in a
 *   verified module's text ranges (`VerifiedModule.textPageHashes`) or in a verified code
 *   image (`VmState.codeImages[].pageHashes`), and the core's SHA-256 of the page
 *   (`pageHashes[i]`, taken after freezing the page) equals the hash recorded when the
 *   module or image was verified.
 *
 * TRUST: `current` and `pageHashes` come from the core, not the guest; the guest only chose
 * the address and the requested bits.
 */
import { MEM_ATTR, MEM_ATTR_MASK, memAttrString } from '../../shared/abi.ts';
import { PAGE_SIZE_N, hex, isPageAligned } from '../../shared/addr.ts';
import type { SetMemoryRange } from '../../shared/protocol.ts';
import type { Decision, PluginContext, VerifierPlugin } from '../plugin-api.ts';
import { allowItem, denyItem, type ItemVerdict } from './patch-sites.ts';

const EXEC_BITS = MEM_ATTR.EXEC | MEM_ATTR.EXEC_USER;
const U64_END = 1n << 64n;

/**
 * The hashes recorded for `page` at verification, each with where it comes from (`module
 * <name>` or `code image <name>`). Empty when no verified module text or code image covers it.
 */
function verifiedPageHashes(ctx: PluginContext, page: bigint): Array<{ source: string; sha256: string }> {
  const out: Array<{ source: string; sha256: string }> = [];
  for (const m of ctx.vm.modules.values()) {
    const h = m.textPageHashes.get(page);
    if (h === undefined) continue;
    // The page must overlap one of the module's text ranges, not just carry a hash.
    if (m.textRanges.some((r) => page < r.end && page + PAGE_SIZE_N > r.start)) out.push({ source: `module ${m.name}`, sha256: h });
  }
  for (const [start, img] of ctx.vm.codeImages) {
    if (page < start || page >= img.end) continue;
    const h = img.pageHashes.get(page);
    if (h !== undefined) out.push({ source: `code image ${img.name}`, sha256: h });
  }
  return out;
}

/** Decides one range. Exported for tests and for plugins that wrap this policy. */
export function checkSetMemoryRange(range: SetMemoryRange, ctx: PluginContext): ItemVerdict {
  const { addr, requested } = range;
  const n = range.frames.length;
  if (!isPageAligned(addr)) return denyItem(`range address ${hex(addr)} is not page-aligned`);
  if (n === 0) return denyItem(`range at ${hex(addr)} has no pages`);
  if (range.current.length !== n || range.pageHashes.length !== n) return denyItem(`range at ${hex(addr)}: frames, current and pageHashes differ in length`);
  if (addr + BigInt(n) * PAGE_SIZE_N > U64_END) return denyItem(`range at ${hex(addr)} of ${n} pages wraps the address space`);
  if ((requested & ~MEM_ATTR_MASK) !== 0) return denyItem(`range at ${hex(addr)}: requested bits ${hex(requested)} include unknown attributes`);
  const want = memAttrString(requested);
  if (requested & MEM_ATTR.WRITE && requested & EXEC_BITS) return denyItem(`W^X: range at ${hex(addr)} asks for ${want}, writable and executable`);

  let changed = 0;
  for (let i = 0; i < n; i++) {
    const page = addr + BigInt(i) * PAGE_SIZE_N;
    const cur = range.current[i]!;
    if (cur & MEM_ATTR.IMMUTABLE) {
      if (requested !== cur) return denyItem(`page ${hex(page)} is immutable (${memAttrString(cur)}) and cannot change to ${want}`);
      continue;
    }
    const added = requested & ~cur;
    if (added !== 0) changed++;
    if ((added & EXEC_BITS) === 0) continue; // removing bits, or adding R / W (non-exec by W^X) / IMMUTABLE
    const hash = String(range.pageHashes[i] ?? '').toLowerCase();
    const known = verifiedPageHashes(ctx, page);
    if (known.length === 0)
      return denyItem(`executable permission for unauthenticated content at ${hex(page)}: no verified module text or code image covers it`);
    if (!known.some((k) => k.sha256.toLowerCase() === hash)) {
      return denyItem(
        `executable permission for unauthenticated content at ${hex(page)}: page hash differs from the verified ${known.map((k) => k.source).join(', ')}`,
      );
    }
  }
  return allowItem(`range at ${hex(addr)} (${n} page${n === 1 ? '' : 's'}) -> ${want}${changed === 0 ? ', no permission added' : ''}`);
}

/** The set-memory plugin. */
export const setMemoryPlugin: VerifierPlugin<'set-memory'> = {
  name: 'set-memory',
  description:
    'allows permission changes that keep W^X, respect IMMUTABLE, and add EXEC only to pages whose hash matches verified module text or a verified code image',
  kinds: ['set-memory'],
  decide(request, ctx) {
    let allowed = 0;
    const items = request.ranges.map((r): { decision: Decision; reason: string } => {
      const v = checkSetMemoryRange(r, ctx);
      if (v.decision === 'allow') allowed++;
      return v;
    });
    return { decision: 'abstain', reason: `${allowed} of ${items.length} ranges allowed`, items };
  },
};
