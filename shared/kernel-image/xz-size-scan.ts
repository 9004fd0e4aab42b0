/**
 * Reads the total uncompressed size an .xz file declares, by walking its streams backward
 * from the end: stream padding, footer, index (as `xz --list` does). The decoder uses it to
 * allocate its output once; it is a hint only, since the forward decode checks every block
 * against the index anyway.
 */

import { checkSize, parseIndex, parseStreamFooter, XZ_STREAM_HEADER_SIZE } from './xz-format.ts';

/**
 * The sum of the uncompressed sizes in every stream's index, or `undefined` when the
 * backward walk does not reach offset 0 cleanly (the forward decode will say why).
 */
export function declaredUncompressedSize(b: Uint8Array): number | undefined {
  let end = b.length;
  let total = 0;
  // Each iteration consumes at least one 24-byte header+footer pair, so this terminates.
  while (end > 0) {
    while (end >= 4 && b[end - 1] === 0 && b[end - 2] === 0 && b[end - 3] === 0 && b[end - 4] === 0) end -= 4;
    if (end < 2 * XZ_STREAM_HEADER_SIZE) return undefined;
    const footerAt = end - XZ_STREAM_HEADER_SIZE;
    const footer = parseStreamFooter(b, footerAt, end);
    if (!footer.ok) return undefined;
    const indexAt = footerAt - footer.value.indexSize;
    if (indexAt < XZ_STREAM_HEADER_SIZE || b[indexAt] !== 0) return undefined;
    const index = parseIndex(b, indexAt, footerAt);
    if (!index.ok || index.value.size !== footer.value.indexSize) return undefined;
    let blocks = 0;
    const check = checkSize(footer.value.checkId);
    for (const r of index.value.records) {
      if (r.unpaddedSize < check) return undefined;
      blocks += Math.ceil(r.unpaddedSize / 4) * 4;
      total += r.uncompressedSize;
    }
    const streamAt = indexAt - blocks - XZ_STREAM_HEADER_SIZE;
    if (streamAt < 0 || !Number.isSafeInteger(total)) return undefined;
    end = streamAt;
  }
  return total;
}
