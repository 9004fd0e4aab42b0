/**
 * Reading NUL-terminated names out of an ELF string table (`SHT_STRTAB`).
 */

const decoder = new TextDecoder('utf-8', { fatal: false });

/**
 * The NUL-terminated string at `offset` in `table`, or `undefined` when the offset is past
 * the table or the string runs off its end without a NUL.
 */
export function readCString(table: Uint8Array, offset: number): string | undefined {
  if (!Number.isInteger(offset) || offset < 0 || offset >= table.length) return undefined;
  const end = table.indexOf(0, offset);
  if (end < 0) return undefined;
  // Names are almost always ASCII: build them directly, which beats TextDecoder on short strings.
  if (end - offset <= 64) {
    let s = '';
    let ascii = true;
    for (let i = offset; i < end; i++) {
      const c = table[i]!;
      if (c >= 0x80) {
        ascii = false;
        break;
      }
      s += String.fromCharCode(c);
    }
    if (ascii) return s;
  }
  return decoder.decode(table.subarray(offset, end));
}
